"""The `pretrain` flow: `<root>/shards` → Ray Train → `<root>/pretrain/<run>/checkpoints/`.

Thin by design: the loop is `training.loop.train`, the distribution `training.ray_launcher`.
The flow takes a whole `PretrainConfig` (built once, by the CLI or from a deployment's
parameters) plus how to run it (workers, GPU, Ray address, resume, failures); it checks it
(`check_inputs`, which the CLI calls too, before Prefect starts), runs the launcher from a
task, and publishes what people read: a line in the flow-run log every `log_every` updates
(step, loss, tokens/s), and at the end a loss-curve PNG (also at
`<root>/pretrain/<run>/loss.png`) and a summary table, as Prefect artifacts. TensorBoard event
files land beside `metrics.jsonl` either way (Ray or in-process). The `roberta pretrain`
subcommand is flows/cli/pretrain.py.
"""
from __future__ import annotations

import re
from pathlib import Path

from prefect import flow, get_run_logger, task

from flows.artifacts import publish_png
from flows.training_log import MetricsFollower
from runroot import layout
from training.metrics_log import plot_loss, read_metrics, summary_rows
from training.pretrain_config import PretrainConfig, PretrainConfigError, Resolved, resolve


def check_inputs(config: PretrainConfig, workers: int = 1, use_ray: bool = True,
                 resume: bool = False) -> Resolved:
    """Every check of a run before anything starts: the config against the shards and itself
    (`resolve`: sizes, vocabulary, tokenizer, masking, an `init_from` checkpoint's files) for
    this many workers, a continued run's shards against the checkpoint's tokenizer, and no
    fresh run over an existing one. Raises PretrainConfigError, FileNotFoundError or
    RunExistsError."""
    from training.run_checkpoints import refuse_existing_run

    resolved = resolve(config, workers if use_ray else 1)
    if config.init_from:
        _check_checkpoint_tokenizer(config)
    refuse_existing_run(config.run_dir, resume)
    if resume:
        _check_same_start(config)
    return resolved


def _check_checkpoint_tokenizer(config: PretrainConfig) -> None:
    """The shards must be the checkpoint's tokens: `resolve` has tied them to
    `<root>/tokenizer/`, so that must be the checkpoint's tokenizer."""
    from corpus.bpe import vocabulary_mismatch
    from training.pretrain_config import adopt_tokenizer_hint

    problem = vocabulary_mismatch(config.root, config.init_from)
    if problem:
        raise PretrainConfigError(f"the shards were not tokenized with the --init-from "
                                  f"checkpoint's tokenizer: {problem}; "
                                  + adopt_tokenizer_hint(config.root, config.init_from))


def _check_same_start(config: PretrainConfig) -> None:
    """A resumed run keeps its starting point: `--init-from` as when it began, or none."""
    from training.run_checkpoints import INIT_FROM, latest_checkpoint, read_manifest

    last = latest_checkpoint(config.run_dir)
    if last is None:
        return
    started = (read_manifest(last).get(INIT_FROM) or {}).get("dir")
    if started != config.init_from:
        how = f"--init-from {started}" if started else "no --init-from"
        raise PretrainConfigError(f"run {config.run} started from "
                                  f"{started or 'random weights'} ({last.name}): resume it "
                                  f"with {how}")


def run_state(config: PretrainConfig, steps: int) -> tuple[str, Path | None]:
    """('done', last checkpoint) | ('resume', None) | ('new', None): what is left to do for
    the run `config` names, whose last update is `steps`."""
    from training.run_checkpoints import finished_checkpoint

    checkpoint = finished_checkpoint(config.run_dir, steps)
    if checkpoint is not None:
        return "done", checkpoint
    return ("resume" if config.run_dir.exists() else "new"), None


@task(name="train")
def run_training(config: dict, workers: int, gpu: bool, address: str | None, resume: bool,
                 max_failures: int, use_ray: bool) -> dict:
    """Ray Train (a local Ray, or the cluster at `address`), or the in-process loop."""
    cfg = PretrainConfig.from_dict(config)
    if not use_ray:
        from training.loop import train
        from training.tensorboard_log import TensorBoardLog

        tensorboard = TensorBoardLog(cfg.run_dir)
        try:
            summary = train(cfg, resume_from="latest" if resume else None,
                            on_metrics=tensorboard)
        finally:
            tensorboard.close()
        summary["metrics"] = read_metrics(cfg.run_dir)
        return summary
    from training.ray_launcher import launch

    return launch(cfg, num_workers=workers, use_gpu=gpu, address=address, resume=resume,
                  max_failures=max_failures, log=get_run_logger().info)


def _resumed_step(config: PretrainConfig) -> int:
    """The step a resumed run continues from: its last complete checkpoint's."""
    from training.run_checkpoints import list_checkpoints

    done = list_checkpoints(config.run_dir)
    return done[-1][0] if done else 0


def _artifact_key(prefix: str, run: str) -> str:
    return (prefix + "-" + re.sub(r"[^a-z0-9-]+", "-", run.lower())).strip("-")[:100]


def publish_artifacts(run: str, summary: dict, png: Path) -> None:
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    rows = summary_rows(summary)
    create_table_artifact(key=_artifact_key("pretrain-summary", run), table=rows,
                          description=f"pretrain run {run}")
    publish_png(png, key=_artifact_key("pretrain-loss", run),
                description=f"loss curve of {run} ({png})")
    table = "\n".join(f"| {r['quantity']} | {r['value']} |" for r in rows)
    create_markdown_artifact(key=_artifact_key("pretrain-report", run), markdown=(
        f"# pretrain `{run}`\n\nLoss curve: `{png}`\n\n"
        f"| quantity | value |\n|---|---|\n{table}\n"))


@flow(name="pretrain")
def pretrain(config: PretrainConfig, workers: int = 1, gpu: bool = False,
             address: str | None = None, resume: bool = False, max_failures: int = 2,
             use_ray: bool = True, log_every: int = 100) -> dict:
    """Pretrain RoBERTa as `config` says (its run root's shards, its run name); returns
    {"checkpoint", "run_dir", "loss_png", "summary"}. `workers` Ray Train workers (GPUs with
    `gpu`), on the cluster at `address` or a local Ray; `use_ray=False` runs the same loop in
    this process. `resume` continues the run from its last checkpoint; `max_failures`
    worker-group restarts from the last checkpoint. Every `log_every` updates (and the last)
    a line with step, loss and tokens/s goes to the flow-run log."""
    logger = get_run_logger()
    if log_every < 1:
        raise PretrainConfigError(f"log_every must be at least 1, got {log_every}")
    if gpu and not use_ray and config.device == "auto":
        config = config.replace(device="cuda")    # --gpu --no-ray: this process's GPU
    res = check_inputs(config, workers, use_ray, resume)  # runs from deployments come here
    logger.info("pretrain %s: %s, %d updates of %d sequences (%d workers x %d x %d accumulation)",
                config.run, config.model_label, res.steps, res.batch_size, res.world_size,
                res.micro_batch_size, res.accumulation)
    with MetricsFollower(config.run_dir / layout.METRICS, log_every, logger.info, res.steps,
                         after_step=_resumed_step(config) if resume else 0):
        summary = run_training(config.to_dict(), workers, gpu, address, resume, max_failures,
                               use_ray)
    png = plot_loss(summary.get("metrics") or read_metrics(config.run_dir),
                    config.run_dir / layout.LOSS_PLOT,
                    f"pretrain {config.run} ({config.model_label})")
    publish_artifacts(config.run, summary, png)
    logger.info("pretrain %s: final checkpoint %s, validation loss %s", config.run,
                summary.get("checkpoint"), summary.get("valid_loss"))
    small = {k: v for k, v in summary.items() if k != "metrics"}
    return {"checkpoint": summary.get("checkpoint"), "run_dir": str(config.run_dir),
            "loss_png": str(png), "summary": small}


__all__ = ["pretrain", "check_inputs", "run_state", "run_training", "publish_artifacts"]
