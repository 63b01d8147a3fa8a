"""`ablations`: every arm of Tables 1-3 and §4.4 at the `tiny` scale on the bundled sample
crawl (in-process pretraining, a tiny synthetic SST-2), complete tables with the paper's
numbers; then `roberta ablations` on the same root skips every finished arm."""
from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest

from tests._pretrain_shards import sample_shards_root
from tests.conftest import REPO

pytestmark = pytest.mark.slow

SCALE = dict(config="tiny", steps=32, batch_size=4, block_size=64, valid_sequences=32,
             valid_fraction=0.1, tasks="sst2", seeds=[0], lrs=[1e-3], finetune_batch_sizes=[16],
             epochs=1, limit=48, shard_workers=1)
CLI_SCALE = ["--config", "tiny", "--steps", "32", "--batch-size", "4", "--block-size", "64",
             "--valid-sequences", "32", "--valid-fraction", "0.1", "--tasks", "sst2",
             "--seeds", "0", "--lrs", "1e-3", "--finetune-batch-sizes", "16", "--epochs", "1",
             "--limit", "48", "--no-ray"]


@pytest.fixture(scope="module")
def run_root(tmp_path_factory):
    """A run root as the pipeline leaves it: the sample corpus and a small byte-level BPE."""
    sample = sample_shards_root(tmp_path_factory.getbasetemp())
    root = tmp_path_factory.mktemp("ablations-root")
    (root / "corpus").symlink_to(sample / "corpus")
    shutil.copytree(sample / "tokenizer", root / "tokenizer")
    return root


@pytest.fixture(scope="module")
def first_run(run_root):
    from evaluation.ablations import ARMS
    from flows.ablations import ablations

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    out = ablations(root=str(run_root), use_ray=False, **SCALE)
    assert sorted(out["ran"]) == sorted(ARMS) and not out["skipped"]
    return out


def test_every_table_is_complete(run_root, first_run):
    from evaluation.ablations import PAPER

    out_dir = run_root / "results" / "ablations"
    for name, table in (("table1", "1"), ("table2", "2"), ("table3", "3"), ("bpe", "bpe")):
        for ext in ("parquet", "md", "png"):
            assert (out_dir / f"{name}.{ext}").stat().st_size > 0, (name, ext)
        rows = pq.read_table(out_dir / f"{name}.parquet").to_pylist()
        assert [r["row"] for r in rows] == [label for label, _, _ in PAPER[table]["rows"]]
        for r in rows:
            assert r["ppl"] is not None and math.isfinite(r["ppl"]) and r["ppl"] > 1, r
            assert r["ours_sst2"] is not None and 0 <= r["ours_sst2"] <= 100, r
            paper = {k: v for k, v in r.items() if k.startswith("paper_")}
            assert paper and all(v is not None for v in paper.values()), r
        md = (out_dir / f"{name}.md").read_text()
        assert PAPER[table]["title"] in md and "(ours)" in md and "paper" in md

    t1 = pq.read_table(out_dir / "table1.parquet").to_pylist()
    assert [r["masking"] for r in t1] == ["static", "dynamic"]
    assert t1[0]["paper_squad2_f1"] == 78.3 and t1[1]["paper_squad2_f1"] == 78.7
    t2 = pq.read_table(out_dir / "table2.parquet").to_pylist()
    assert [r["nsp"] for r in t2] == [True, True, False, False]
    assert [r["paper_race"] for r in t2] == [64.2, 63.0, 64.8, 65.6]
    # Table 3: batch x1/x8/x32 at steps /1//8//32 (equal sequences), lr ratios 1 : 7 : 10.
    t3 = pq.read_table(out_dir / "table3.parquet").to_pylist()
    assert [r["batch_size"] * r["steps"] for r in t3] == [128, 128, 128]
    assert [round(r["lr"] / t3[0]["lr"], 6) for r in t3] == [1, 7, 10]
    assert [r["paper_ppl"] for r in t3] == [3.99, 3.68, 3.77]
    bpe = pq.read_table(out_dir / "bpe.parquet").to_pylist()
    assert [r["vocab_size"] for r in bpe] == [1000, 600]       # the paper's 50K : 30K
    assert [r["tokenizer"] for r in bpe] == ["byte", "char"]
    info = json.loads((run_root / "ablations" / "_data" / "full-sentences-char600-T64" /
                       "tokenizer" / "tokenizer_info.json").read_text())
    assert info["kind"] == "char-bpe"
    # Shared arms ran once: Table 2's full-sentences is Table 3's base and §4.4's byte-level.
    assert t2[2]["ppl"] == t3[0]["ppl"] == bpe[0]["ppl"]
    assert t1[1]["ppl"] == t2[0]["ppl"]


def test_cli_rerun_skips_finished_arms(run_root, first_run):
    from evaluation.ablations import ARMS

    arm_files = {a: (run_root / "ablations" / a / "arm.json").stat().st_mtime_ns for a in ARMS}
    started = time.time()
    run = subprocess.run([sys.executable, "-m", "flows.cli", "ablations", "--root",
                          str(run_root), *CLI_SCALE], capture_output=True, text=True,
                         timeout=600, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    assert "already done, skipped: " + ", ".join(ARMS) in run.stdout
    assert "Table 3: batch size at equal compute" in run.stdout
    assert {a: (run_root / "ablations" / a / "arm.json").stat().st_mtime_ns
            for a in ARMS} == arm_files
    assert time.time() - started < 120
