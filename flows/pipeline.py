"""The `pipeline` flow: build-corpus → train-tokenizer → shard-corpus → pretrain → finetune-eval.

Each stage is the stage's own flow, run as a subflow, and skipped when its output already
exists (its manifest, written last, is the proof), so a rerun after a failure continues
where the run stopped; an interrupted pretrain run resumes from its last checkpoint.

Continued pretraining (`pretrain_config.init_from`, a checkpoint directory): train-tokenizer
adopts the checkpoint's tokenizer instead of training one, and pretrain starts from its
weights.
"""
from __future__ import annotations

import os
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from evaluation.results import paths as results_paths
from flows.build_corpus import build_corpus
from flows.finetune_eval import SYNTHETIC_DATA, SYNTHETIC_TASKS, finetune_eval, resolve_data_dir
from flows.pretrain import pretrain, run_state
from flows.shard_corpus import shard_corpus_flow
from flows.train_tokenizer import train_tokenizer_flow
from runroot import layout
from training.pretrain_config import PretrainConfig


def stage_outputs(root: str | Path, run: str) -> dict[str, Path]:
    """The file whose presence means each stage is done."""
    root = Path(root)
    return {"build-corpus": root / layout.DONE["build-corpus"],
            "train-tokenizer": root / layout.DONE["train-tokenizer"],
            "shard-corpus": root / layout.DONE["shard-corpus"],
            "pretrain": layout.run_dir(root, run),
            "results": root / layout.RESULTS_TABLE}


def pretrain_stage_config(root: str, config: PretrainConfig | None) -> PretrainConfig:
    """The pretrain stage's config. The pipeline's `root` is the run root of every stage: a
    config for another root is refused rather than trained on shards it never sees. None: the
    base preset's run."""
    if config is None:
        return PretrainConfig.for_run(root, "base")
    if os.path.abspath(config.root) != os.path.abspath(root):
        raise ValueError(f"pretrain_config.root {config.root!r} is not the pipeline's root "
                         f"{root!r}: every stage of a pipeline works on one run root")
    return config


@flow(name="pipeline")
def pipeline(inputs: list[str] | None = None, root: str = layout.DEFAULT_ROOT,
             corpus_runner: str = "processes", workers: int | None = None,
             vocab_size: int = 50265, format: str = "full-sentences", block_size: int = 512,
             pretrain_config: PretrainConfig | None = None, train_workers: int = 1,
             gpu: bool = False, address: str | None = None,
             tasks: str | None = None, data_dir: str = SYNTHETIC_DATA,
             seeds: list[int] | None = None, lrs: list[float] | None = None,
             batch_sizes: list[int] | None = None, epochs: int | None = None) -> dict:
    """The whole RoBERTa recipe on a crawl: corpus, tokenizer, shards, pretraining, evaluation.

    Args:
        inputs: WARC inputs of build-corpus (default: the bundled sample crawl).
        root: the run root holding every artifact.
        corpus_runner, workers: build-corpus fan-out (threads | processes | ray).
        vocab_size: BPE vocabulary (RoBERTa: 50,265).
        format, block_size: shard-corpus input format and tokens per block.
        pretrain_config: the pretrain run (model/recipe preset, sizes, run name), on `root`
            (default: `PretrainConfig.for_run(root, "base")`).
        train_workers, gpu, address: Ray Train workers, one GPU each, on a cluster or locally.
        tasks: finetune-eval tasks (`glue`, `all`, or a list such as `mrpc,squad2`; default:
            `glue`, or `sst2,squad1` with synthetic data).
        data_dir: task data directory, or `synthetic` for generated stand-in tasks.
        seeds, lrs, batch_sizes, epochs: finetuning sweep overrides (default: Table 10).
    """
    cfg = pretrain_stage_config(root, pretrain_config)
    check_init_from(root, cfg, block_size)
    done = stage_outputs(root, cfg.run)
    skipped = corpus_stages(root, done, inputs=inputs, corpus_runner=corpus_runner,
                            workers=workers, vocab_size=vocab_size, format=format,
                            block_size=block_size, init_from=cfg.init_from)
    checkpoint, finished = pretrain_stage(cfg, train_workers, gpu=gpu, address=address)
    if finished:
        skipped.append("pretrain")
    if skipped:
        get_run_logger().info("pipeline: already done, skipped: %s", ", ".join(skipped))

    eval_data = resolve_data_dir(root, data_dir)   # synthetic: the stand-in tasks, written once
    if data_dir == SYNTHETIC_DATA:
        tasks = tasks or SYNTHETIC_TASKS
    evaluation = finetune_eval(root=root, data_dir=str(eval_data), tasks=tasks or "glue",
                               checkpoint=str(checkpoint), seeds=seeds, lrs=lrs,
                               batch_sizes=batch_sizes, epochs=epochs)
    return {"skipped": skipped,
            "artifacts": publish_artifacts(root, done, cfg, checkpoint, eval_data),
            "failed_jobs": evaluation.get("failed_jobs", 0),
            "synthetic_tasks": data_dir == SYNTHETIC_DATA}


def check_init_from(root: str, cfg: PretrainConfig, block_size: int | None = None) -> None:
    """A continued pipeline's checks before any stage runs: the checkpoint directory is a
    RoBERTa checkpoint whose weights fit its config, its tokenizer is readable, a tokenizer
    already in the run root is that one (never overwritten), and blocks fit its positions.
    Raises ValueError (HFCheckpointError) or FileNotFoundError naming what is wrong."""
    from corpus.bpe import tokenizer_from_dir, vocabulary_mismatch
    from training.hf_config import check_checkpoint

    if not cfg.init_from:
        return
    model = check_checkpoint(cfg.init_from)
    tokenizer_from_dir(cfg.init_from)
    if (Path(root) / layout.DONE["train-tokenizer"]).exists():
        problem = vocabulary_mismatch(root, cfg.init_from)
        if problem:
            raise ValueError(f"{problem}: a continued pipeline needs the checkpoint's "
                             f"tokenizer; use a new --root (this one is left as it is)")
    if block_size is not None and block_size > model.max_positions:
        raise ValueError(f"--block-size {block_size}: {cfg.init_from}/config.json allows "
                         f"{model.max_positions} tokens per block")


def corpus_stages(root: str, done: dict[str, Path], *, inputs: list[str] | None,
                  corpus_runner: str, workers: int | None, vocab_size: int, format: str,
                  block_size: int, init_from: str | None = None) -> list[str]:
    """build-corpus, train-tokenizer (or, with `init_from`, adopting that checkpoint's) and
    shard-corpus, each unless its output is there; returns the stages skipped."""
    skipped = []
    if done["build-corpus"].exists():
        skipped.append("build-corpus")
    else:
        build_corpus(inputs=inputs or ["corpus/sample/"], root=root, runner=corpus_runner,
                     workers=workers)
    if done["train-tokenizer"].exists():
        skipped.append("train-tokenizer")
    elif init_from:
        train_tokenizer_flow(root=root, existing=init_from)
    else:
        train_tokenizer_flow(root=root, vocab_size=vocab_size)
    if done["shard-corpus"].exists():
        skipped.append("shard-corpus")
    else:
        shard_corpus_flow(root=root, format=format, block_size=block_size, workers=workers)
    return skipped


def pretrain_stage(cfg: PretrainConfig, train_workers: int, gpu: bool,
                   address: str | None) -> tuple[Path, bool]:
    """(the run's final checkpoint, whether the run was already finished): trained, or
    resumed when it was interrupted, unless it is finished."""
    from training.pretrain_config import resolve

    state, checkpoint = run_state(cfg, resolve(cfg, train_workers).steps)
    if state == "done":
        return checkpoint, True
    out = pretrain(config=cfg, workers=train_workers, gpu=gpu, address=address,
                   resume=state == "resume")
    return Path(out["checkpoint"]), False


def publish_artifacts(root: str, done: dict[str, Path], cfg: PretrainConfig, checkpoint: Path,
                      eval_data: Path) -> dict[str, str]:
    """Where everything is, as a Prefect artifact; returns it."""
    artifacts = {name: str(path) for name, path in done.items()}
    artifacts.update(checkpoint=str(checkpoint),
                     loss_curve=str(cfg.run_dir / layout.LOSS_PLOT),
                     results_chart=results_paths(root)["png"],
                     eval_data=str(eval_data))
    create_markdown_artifact(key="pipeline-artifacts", markdown="# Where everything is\n\n" +
                             "\n".join(f"- **{k}**: `{v}`" for k, v in artifacts.items()))
    return artifacts
