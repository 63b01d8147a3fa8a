"""A pretraining run's metrics: `<run_dir>/metrics.jsonl` (one JSON line per optimizer update,
written by rank 0), and what people read from it: the loss-curve plot and the summary rows.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from runroot import layout, storage

METRICS_FILE = layout.METRICS


class MetricsLog:
    """`<run_dir>/metrics.jsonl`: one JSON line per optimizer update (rank 0 only). Restarted
    from a checkpoint's history on resume, so the file always matches the trajectory."""

    def __init__(self, path: Path, history: list[dict], enabled: bool):
        self.path, self.enabled = path, enabled
        self.history = list(history)
        if enabled:
            storage.save_text(path, "".join(json.dumps(m) + "\n" for m in self.history))
            self._f = open(path, "a", buffering=1)

    def append(self, m: dict) -> None:
        self.history.append(m)
        if self.enabled:
            self._f.write(json.dumps(m) + "\n")

    def close(self) -> None:
        if self.enabled:
            self._f.close()


def read_metrics(run_directory) -> list[dict]:
    p = Path(run_directory) / METRICS_FILE
    if not p.is_file():
        return []
    out = []
    for line in p.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:   # a line being written right now
            pass
    return out


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
    with storage.atomic_file(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return path


def summary_rows(summary: dict) -> list[dict]:
    metrics = summary.get("metrics") or []
    good = [m for m in metrics if not m.get("skipped") and m.get("loss") is not None]
    tps = [m["tokens_per_s"] for m in good[1:]] or [m["tokens_per_s"] for m in good]
    mfu = [m["mfu"] for m in good if m.get("mfu") is not None]
    rows = [("run directory", summary.get("run_dir")),
            *started_from_row(summary.get("init_from")),
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


def started_from_row(init_from: dict | None) -> list[tuple[str, str]]:
    """The summary row of a continued run: the checkpoint it started from and its hash."""
    if not init_from:
        return []
    return [("started from", f"{init_from['dir']} (sha256 {init_from['sha256'][:16]})")]


__all__ = ["METRICS_FILE", "MetricsLog", "read_metrics", "plot_loss", "summary_rows"]
