"""The `pipeline` flow: build-corpus → train-tokenizer → shard-corpus → pretrain → finetune-eval.

Each stage is the stage's own flow, run as a subflow, and skipped when its output already
exists (its manifest, written last, is the proof), so a rerun after a failure continues
where the run stopped; an interrupted pretrain run resumes from its last checkpoint.
"""
from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from flows.build_corpus import build_corpus
from flows.finetune_eval import SYNTHETIC_DATA, SYNTHETIC_TASKS, finetune_eval, resolve_data_dir
from flows.pretrain import pretrain
from flows.shard_corpus import shard_corpus_flow
from flows.train_tokenizer import train_tokenizer_flow
from runroot import layout



def stage_outputs(root: str | Path, run: str) -> dict[str, Path]:
    """The file whose presence means each stage is done."""
    root = Path(root)
    return {"build-corpus": root / layout.DONE["build-corpus"],
            "train-tokenizer": root / layout.DONE["train-tokenizer"],
            "shard-corpus": root / layout.DONE["shard-corpus"],
            "pretrain": layout.run_dir(root, run),
            "results": root / layout.RESULTS_TABLE}


def pretrain_state(root: str, run: str, steps: int) -> tuple[str, Path | None]:
    """('done', last checkpoint) | ('resume', None) | ('new', None) for a pretrain run."""
    from training.run_checkpoints import finished_checkpoint

    run_dir = layout.run_dir(root, run)
    checkpoint = finished_checkpoint(run_dir, steps)
    if checkpoint is not None:
        return "done", checkpoint
    return ("resume" if run_dir.exists() else "new"), None


@flow(name="pipeline")
def pipeline(inputs: list[str] | None = None, root: str = "runs/default",
             corpus_runner: str = "processes", workers: int | None = None,
             vocab_size: int = 50265, format: str = "full-sentences", block_size: int = 512,
             config: str = "base", steps: int | None = None, batch_size: int | None = None,
             micro_batch_size: int | None = None, train_workers: int = 1, gpu: bool = False,
             address: str | None = None, run: str | None = None,
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
        config, steps, batch_size, micro_batch_size: pretrain model/recipe preset and sizes.
        train_workers, gpu, address: Ray Train workers, one GPU each, on a cluster or locally.
        run: pretrain run name (default: the config name).
        tasks: finetune-eval tasks (`glue`, `all`, or a list such as `mrpc,squad2`; default:
            `glue`, or `sst2,squad1` with synthetic data).
        data_dir: task data directory, or `synthetic` for generated stand-in tasks.
        seeds, lrs, batch_sizes, epochs: finetuning sweep overrides (default: Table 10).
    """
    from training.pretrain_config import resolve

    logger = get_run_logger()
    run = run or config
    done = stage_outputs(root, run)
    skipped = []

    if done["build-corpus"].exists():
        skipped.append("build-corpus")
    else:
        build_corpus(inputs=inputs or ["corpus/sample/"], root=root, runner=corpus_runner,
                     workers=workers)
    if done["train-tokenizer"].exists():
        skipped.append("train-tokenizer")
    else:
        train_tokenizer_flow(root=root, vocab_size=vocab_size)
    if done["shard-corpus"].exists():
        skipped.append("shard-corpus")
    else:
        shard_corpus_flow(root=root, format=format, block_size=block_size, workers=workers)

    from training.pretrain_config import PretrainConfig

    cfg = PretrainConfig.for_run(root, config, steps=steps, batch_size=batch_size,
                          micro_batch_size=micro_batch_size, run=run)
    state, checkpoint = pretrain_state(root, run, resolve(cfg, train_workers).steps)
    if state == "done":
        skipped.append("pretrain")
    else:
        out = pretrain(root=root, config=config, steps=steps, batch_size=batch_size,
                       micro_batch_size=micro_batch_size, workers=train_workers, gpu=gpu,
                       address=address, run=run, resume=state == "resume")
        checkpoint = Path(out["checkpoint"])
    if skipped:
        logger.info("pipeline: already done, skipped: %s", ", ".join(skipped))

    eval_data = resolve_data_dir(root, data_dir)   # synthetic: the stand-in tasks, written once
    if data_dir == SYNTHETIC_DATA:
        tasks = tasks or SYNTHETIC_TASKS
    evaluation = finetune_eval(root=root, data_dir=str(eval_data), tasks=tasks or "glue",
                               checkpoint=str(checkpoint), seeds=seeds, lrs=lrs,
                               batch_sizes=batch_sizes, epochs=epochs)
    artifacts = {name: str(path) for name, path in done.items()}
    artifacts.update(checkpoint=str(checkpoint),
                     loss_curve=str(layout.run_dir(root, run) / layout.LOSS_PLOT),
                     results_chart=str(Path(root) / layout.RESULTS / "results.png"),
                     eval_data=str(eval_data))
    create_markdown_artifact(key="pipeline-artifacts", markdown="# Where everything is\n\n" +
                             "\n".join(f"- **{k}**: `{v}`" for k, v in artifacts.items()))
    return {"skipped": skipped, "artifacts": artifacts,
            "failed_jobs": evaluation.get("failed_jobs", 0),
            "synthetic_tasks": data_dir == SYNTHETIC_DATA}

