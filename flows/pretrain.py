"""The `pretrain` flow: `<root>/shards` → Ray Train → `<root>/pretrain/<run>/checkpoints/`.

Thin by design: the loop is `training.loop.train`, the distribution `training.ray_launcher`.
This module turns parameters into a `PretrainConfig`, runs the launcher from a task, and
publishes what people read: a loss-curve PNG (also at `<root>/pretrain/<run>/loss.png`) and a
summary table, as Prefect artifacts. The `roberta pretrain` subcommand is
flows/cli/pretrain.py.
"""
from __future__ import annotations

import base64
import re
from pathlib import Path

from prefect import flow, get_run_logger, task

from training.metrics_log import plot_loss, read_metrics, summary_rows
from training.pretrain_config import PretrainConfig, resolve

@task(name="train")
def run_training(config: dict, workers: int, gpu: bool, address: str | None, resume: bool,
                 max_failures: int, use_ray: bool) -> dict:
    """Ray Train (a local Ray, or the cluster at `address`), or the in-process loop."""
    cfg = PretrainConfig.from_dict(config)
    if not use_ray:
        from training.loop import train
        from training.ray_launcher import refuse_existing_run

        refuse_existing_run(cfg.run_dir, resume)
        summary = train(cfg, resume_from="latest" if resume else None)
        summary["metrics"] = read_metrics(cfg.run_dir)
        return summary
    from training.ray_launcher import launch

    return launch(cfg, num_workers=workers, use_gpu=gpu, address=address, resume=resume,
                  max_failures=max_failures)


def _artifact_key(prefix: str, run: str) -> str:
    return (prefix + "-" + re.sub(r"[^a-z0-9-]+", "-", run.lower())).strip("-")[:100]


def publish_artifacts(run: str, summary: dict, png: Path) -> None:
    from prefect.artifacts import (create_image_artifact, create_markdown_artifact,
                                   create_table_artifact)

    rows = summary_rows(summary)
    create_table_artifact(key=_artifact_key("pretrain-summary", run), table=rows,
                          description=f"pretrain run {run}")
    data = png.read_bytes()
    # The UI shows image artifacts by URL; a data URL keeps the run self-contained.
    if len(data) < 2_000_000:
        create_image_artifact(image_url="data:image/png;base64," + base64.b64encode(data).decode(),
                              key=_artifact_key("pretrain-loss", run),
                              description=f"loss curve of {run} ({png})")
    table = "\n".join(f"| {r['quantity']} | {r['value']} |" for r in rows)
    create_markdown_artifact(key=_artifact_key("pretrain-report", run), markdown=(
        f"# pretrain `{run}`\n\nLoss curve: `{png}`\n\n"
        f"| quantity | value |\n|---|---|\n{table}\n"))


@flow(name="pretrain")
def pretrain(root: str, config: str = "tiny", steps: int | None = None,
             batch_size: int | None = None, micro_batch_size: int | None = None,
             workers: int = 1, gpu: bool = False, address: str | None = None,
             run: str | None = None, resume: bool = False, checkpoint_every: int | None = None,
             keep_last: int = 3, valid_every: int | None = None, valid_batches: int = 16,
             seed: int = 0, masking: str = "dynamic", model_overrides: dict | None = None,
             optim_overrides: dict | None = None, max_failures: int = 2,
             use_ray: bool = True, compile: str = "auto") -> dict:
    """Pretrain RoBERTa on `<root>/shards`; returns {"checkpoint", "run_dir", "loss_png",
    "summary"}. `workers` Ray Train workers (GPUs with `gpu`), on the cluster at `address` or a
    local Ray; `use_ray=False` runs the same loop in this process. `compile`: off, default,
    cudagraphs, or auto (cudagraphs on one GPU, default on several, off on CPU)."""
    logger = get_run_logger()
    cfg = PretrainConfig.for_run(root, config, steps=steps, batch_size=batch_size,
                          micro_batch_size=micro_batch_size, run=run,
                          checkpoint_every=checkpoint_every, keep_last=keep_last,
                          valid_every=valid_every, valid_batches=valid_batches, seed=seed,
                          masking=masking, model_overrides=dict(model_overrides or {}),
                          optim_overrides=dict(optim_overrides or {}), compile=compile,
                          device="cuda" if gpu and not use_ray else "auto")
    res = resolve(cfg, workers if use_ray else 1)  # bad sizes fail before anything starts
    logger.info("pretrain %s: %s, %d updates of %d sequences (%d workers x %d x %d accumulation)",
                cfg.run, config, res.steps, res.batch_size, res.world_size,
                res.micro_batch_size, res.accumulation)
    summary = run_training(cfg.to_dict(), workers, gpu, address, resume, max_failures, use_ray)
    png = plot_loss(summary.get("metrics") or read_metrics(cfg.run_dir),
                    cfg.run_dir / "loss.png", f"pretrain {cfg.run} ({config})")
    publish_artifacts(cfg.run, summary, png)
    logger.info("pretrain %s: final checkpoint %s, validation loss %s", cfg.run,
                summary.get("checkpoint"), summary.get("valid_loss"))
    small = {k: v for k, v in summary.items() if k != "metrics"}
    return {"checkpoint": summary.get("checkpoint"), "run_dir": str(cfg.run_dir),
            "loss_png": str(png), "summary": small}


__all__ = ["pretrain", "run_training", "publish_artifacts"]
