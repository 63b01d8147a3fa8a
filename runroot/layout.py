"""The run-root layout: every path under a run root, and the file whose presence says a
stage is done. Nothing else in the project spells these paths.

    <root>/corpus/shards/<input-id>.parquet      one per input, before the global dedup
    <root>/corpus/manifests/<input-id>.json      counts per outcome (the input is done)
    <root>/corpus/downloads/                     remote inputs while they are processed
    <root>/corpus/documents/part-*.parquet       the corpus after exact + near dedup
    <root>/corpus/dedup_report.json              written last: build-corpus is done
    <root>/tokenizer/                            tokenizer.json, vocab.json, merges.txt,
                                                 tokenizer_info.json (written last)
    <root>/shards/{train,valid}/part-*.parquet   packed token blocks
    <root>/shards/_parts/part-*.json             per corpus part, after its shards
    <root>/shards/manifest.json                  written last: shard-corpus is done
    <root>/pretrain/<run>/checkpoints/step-N/    checkpoints (HF layout + training state)
    <root>/pretrain/<run>/metrics.jsonl          one line per optimizer update, + loss.png
    <root>/results/results.parquet               the results table (+ .csv, .md, .png)
    <root>/results/jobs/<task>/<key>.json        finished finetuning jobs (the job cache)
    <root>/results/predictions/<task>/<key>/     each finished job's dev predictions
    <root>/results/ablations/                    the ablation tables
    <root>/eval-data/                            generated stand-in task data
    <root>/ablations/_data/<data-id>/            one shard set per ablation data setting
    <root>/ablations/<arm>/                      a run root per arm, arm.json written last

Paths are relative to the root, "/"-separated, so they work for local roots and URIs alike:
`storage.join(base, layout.DOCUMENTS)` inside a filesystem, `Path(root) / layout.RESULTS`
for stages that need a local root. Imports only the standard library.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

DEFAULT_ROOT = "runs/default"

CORPUS = "corpus"
CORPUS_SHARDS = "corpus/shards"
CORPUS_MANIFESTS = "corpus/manifests"
DOWNLOADS = "corpus/downloads"
DOCUMENTS = "corpus/documents"
DEDUP_REPORT = "corpus/dedup_report.json"

TOKENIZER = "tokenizer"
TOKENIZER_INFO = "tokenizer/tokenizer_info.json"

SHARDS = "shards"
SHARD_PARTS = "shards/_parts"
SHARDS_MANIFEST = "shards/manifest.json"

PRETRAIN = "pretrain"
CHECKPOINTS = "checkpoints"          # inside a run directory
METRICS = "metrics.jsonl"            # inside a run directory
LOSS_PLOT = "loss.png"               # inside a run directory
WORKERS_LOG = "workers.jsonl"        # inside a run directory: each Ray Train worker (re)start
TENSORBOARD_EVENTS = "events.out.tfevents.*"   # inside a run directory: TensorBoard's files

RESULTS = "results"
RESULTS_TABLE = "results/results.parquet"
JOBS = "results/jobs"
PREDICTIONS = "results/predictions"
TREND_PLOT = "results/trend.png"
ABLATION_TABLES = "results/ablations"
EVAL_DATA = "eval-data"

ABLATIONS = "ablations"
ABLATION_DATA = "ablations/_data"
ARM_DONE = "arm.json"                # inside an arm's run root

# The file each stage writes last: present means the stage is done.
DONE = {"build-corpus": DEDUP_REPORT,
        "import-corpus": DEDUP_REPORT,
        "train-tokenizer": TOKENIZER_INFO,
        "shard-corpus": SHARDS_MANIFEST,
        "finetune-eval": RESULTS_TABLE}


def input_shard(input_id: str) -> str:
    return f"{CORPUS_SHARDS}/{input_id}.parquet"


def input_manifest(input_id: str) -> str:
    return f"{CORPUS_MANIFESTS}/{input_id}.json"


def run_dir(root: str | os.PathLike, run: str) -> Path:
    """`<root>/pretrain/<run>`: a pretraining run's checkpoints, metrics and plots."""
    return Path(root) / PRETRAIN / run


def arm_root(root: str | os.PathLike, arm: str) -> Path:
    return Path(root) / ABLATIONS / arm


def ablation_data(root: str | os.PathLike, data_id: str) -> Path:
    return Path(root) / ABLATION_DATA / data_id


def downloads_dir(root: str | os.PathLike) -> Path:
    """Where remote inputs are downloaded before processing: a local folder in any case (the
    readers need a local file), `<root>/corpus/downloads` for a local root, else a folder of
    the temp dir named after the root."""
    if "://" not in os.fspath(root):
        return Path(root) / DOWNLOADS
    key = hashlib.sha256(os.fspath(root).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / "roberta-downloads" / key
