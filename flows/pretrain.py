"""The `pretrain` flow: `<root>/shards` → Ray Train → `<root>/pretrain/<run>/checkpoints/`.

Thin by design: the loop is `training.loop.train`, the distribution `training.ray_launcher`.
This module turns parameters into a `PretrainConfig`, runs the launcher from a task, and
publishes what people read: a loss-curve PNG (also at `<root>/pretrain/<run>/loss.png`) and a
summary table, as Prefect artifacts. `add_arguments`/`run_from_cli` make it the
`roberta pretrain` subcommand (flows/pretrain_cli.py).
"""
from __future__ import annotations

import base64
import math
import re
from pathlib import Path

from prefect import flow, get_run_logger, task

from training.loop import PretrainConfig, read_metrics, resolve

DEFAULT_CHECKPOINT_EVERY = 1000


def pretrain_config(root: str, config: str = "tiny", *, steps: int | None = None,
                    batch_size: int | None = None, micro_batch_size: int | None = None,
                    run: str | None = None, checkpoint_every: int | None = None,
                    keep_last: int = 3, valid_every: int | None = None,
                    valid_batches: int = 16, seed: int = 0, masking: str = "dynamic",
                    model_overrides: dict | None = None, optim_overrides: dict | None = None,
                    device: str = "auto", compile: bool | str = "auto",
                    max_consecutive_nonfinite: int = 5) -> PretrainConfig:
    """A PretrainConfig from flow/CLI parameters. Unset intervals: every 1000 updates, or a
    tenth of a short run."""
    from training.config import OptimConfig

    total = (steps if steps is not None
             else OptimConfig.named(config, **(optim_overrides or {})).total_steps)
    every = min(DEFAULT_CHECKPOINT_EVERY, max(1, total // 10))
    kw = dict(root=str(root), run=run or config, model=config,
              model_overrides=dict(model_overrides or {}),
              optim_overrides=dict(optim_overrides or {}), masking=masking,
              batch_size=batch_size, steps=steps, seed=seed,
              checkpoint_every=checkpoint_every if checkpoint_every is not None else every,
              keep_last=keep_last, valid_every=valid_every if valid_every is not None else every,
              valid_batches=valid_batches, device=device, compile=compile,
              max_consecutive_nonfinite=max_consecutive_nonfinite)
    return PretrainConfig(**kw, micro_batch_size=micro_batch_size)


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


def plot_loss(metrics: list[dict], path: Path, title: str) -> Path:
    """Training loss per update (and its moving average), validation loss, learning rate."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    good = [m for m in metrics if not m.get("skipped") and m.get("loss") is not None]
    steps = [m["step"] for m in good]
    loss = [m["loss"] for m in good]
    fig, (ax, ax_lr) = plt.subplots(2, 1, figsize=(8, 6), sharex=True,
                                    gridspec_kw={"height_ratios": [3, 1]})
    ax.plot(steps, loss, lw=0.6, alpha=0.4, color="C0", label="train (per update)")
    w = max(1, len(loss) // 50)
    if w > 1:
        avg = [sum(loss[max(0, i - w + 1):i + 1]) / len(loss[max(0, i - w + 1):i + 1])
               for i in range(len(loss))]
        ax.plot(steps, avg, lw=1.5, color="C0", label=f"train ({w}-update mean)")
    val = [(m["step"], m["valid_loss"]) for m in good if m.get("valid_loss") is not None]
    if val:
        ax.plot(*zip(*val), "o-", color="C3", label="validation (fixed masks)")
    ax.set_ylabel("MLM loss (nats / masked token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    ax_lr.plot(steps, [m["lr"] for m in good], color="C2")
    ax_lr.set_ylabel("learning rate")
    ax_lr.set_xlabel("optimizer update")
    ax_lr.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)
    return path


def summary_rows(summary: dict) -> list[dict]:
    metrics = summary.get("metrics") or []
    good = [m for m in metrics if not m.get("skipped") and m.get("loss") is not None]
    tps = [m["tokens_per_s"] for m in good[1:]] or [m["tokens_per_s"] for m in good]
    mfu = [m["mfu"] for m in good if m.get("mfu") is not None]
    rows = [("run directory", summary.get("run_dir")),
            ("final checkpoint", summary.get("checkpoint")),
            ("optimizer updates", summary.get("steps")),
            ("batch (sequences / update)", summary.get("batch_size")),
            ("workers x micro-batch x accumulation",
             f"{summary.get('world_size')} x {summary.get('micro_batch_size')} x "
             f"{summary.get('accumulation')}"),
            ("final training loss", good[-1]["loss"] if good else None),
            ("final validation loss", summary.get("valid_loss")),
            ("final validation perplexity",
             math.exp(summary["valid_loss"]) if summary.get("valid_loss") else None),
            ("skipped updates (non-finite)", summary.get("skipped_total")),
            ("tokens processed", summary.get("tokens_total")),
            ("mean tokens/s", sum(tps) / len(tps) if tps else None),
            ("mean MFU", sum(mfu) / len(mfu) if mfu else None),
            ("worker-group restarts", summary.get("restarts", 0)),
            ("wall time (s)", summary.get("elapsed_s"))]
    out = []
    for k, v in rows:
        if isinstance(v, float):
            v = f"{v:.4g}"
        out.append({"quantity": k, "value": "" if v is None else str(v)})
    return out


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
    cfg = pretrain_config(root, config, steps=steps, batch_size=batch_size,
                          micro_batch_size=micro_batch_size, run=run,
                          checkpoint_every=checkpoint_every, keep_last=keep_last,
                          valid_every=valid_every, valid_batches=valid_batches, seed=seed,
                          masking=masking, model_overrides=model_overrides,
                          optim_overrides=optim_overrides, compile=compile,
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


__all__ = ["pretrain", "pretrain_config", "run_training", "plot_loss", "publish_artifacts"]
