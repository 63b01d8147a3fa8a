"""The trend over pretraining: per task, the score of each evaluated checkpoint against its
pretraining step, across the whole results history. What a team watching a long pretraining
run looks at every morning: is downstream quality still rising?

A series is one task's primary metric for one pretraining run (`model`) on one set of task
data (its fingerprint): scores on other data, or on generated stand-ins, are other series,
never points of the same line. Each step shows its newest successful result.
"""
from __future__ import annotations

import io
import os
from collections import defaultdict

import pyarrow as pa

from evaluation.tasks import get_task


def series_label(row: dict) -> str:
    if row["standin"]:
        return f"{row['model']} · stand-in"
    data = os.path.basename(row["data"]) if row["data"] else "?"
    return f"{row['model']} · {data} {(row['data_fingerprint'] or '')[:6]}".rstrip()


def trend_series(table: pa.Table) -> dict[tuple, list[dict]]:
    """{(task, metric, series label): rows, one per checkpoint step, oldest step first}."""
    newest: dict[tuple, dict[int, dict]] = defaultdict(dict)
    for r in table.to_pylist():
        if (r["value"] is None or r["error"] or r["checkpoint_step"] is None
                or r["metric"] != get_task(r["task"]).primary_metric):
            continue
        newest[(r["task"], r["metric"], series_label(r))][r["checkpoint_step"]] = r
    return {key: [by_step[s] for s in sorted(by_step)] for key, by_step in sorted(newest.items())}


def trend_rows(table: pa.Table) -> list[dict]:
    """The trend as flat rows (task, metric, series, step, value, change since the previous
    step of the series), for a table artifact and the terminal."""
    out = []
    for (task, metric, label), rows in trend_series(table).items():
        previous = None
        for r in rows:
            change = None if previous is None else r["value"] - previous
            out.append({"task": task, "metric": metric, "series": label,
                        "step": r["checkpoint_step"], "value": round(r["value"], 2),
                        "change": None if change is None else round(change, 2)})
            previous = r["value"]
    return out


def render_trend(table: pa.Table):
    """A rich table of `trend_rows` (about 60 columns wide)."""
    from rich import box
    from rich.table import Table

    t = Table(title="Score against pretraining step (each task's primary metric)",
              box=box.SIMPLE_HEAD, title_justify="left")
    for header, right in (("task", False), ("metric", False), ("series", False),
                          ("step", True), ("value", True), ("change", True)):
        t.add_column(header, justify="right" if right else "left")
    for r in trend_rows(table):
        change = "" if r["change"] is None else f"{r['change']:+.1f}"
        style = "green" if (r["change"] or 0) > 0 else "red" if (r["change"] or 0) < 0 else None
        t.add_row(r["task"], r["metric"], r["series"], str(r["step"]), f"{r['value']:.1f}",
                  change, style=style)
    return t


def _paper_lines(ax, task: str, metric: str) -> None:
    ref = get_task(task).reference(metric)
    for value, label, style in ((ref.base, "paper base", ":"), (ref.large, "paper large", "--")):
        if value is not None:
            ax.axhline(value, color="0.4", linestyle=style, linewidth=1, label=label)


def plot_trend(table: pa.Table) -> bytes:
    """results/trend.png: one panel per task, score against pretraining step, a line per
    series (stand-ins dashed and grey), the paper's numbers as horizontal lines."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_task: dict[tuple, list] = defaultdict(list)
    for (task, metric, label), rows in trend_series(table).items():
        by_task[(task, metric)].append((label, rows))
    n = max(1, len(by_task))
    fig, axes = plt.subplots(n, 1, figsize=(7.0, 3.2 * n), squeeze=False)
    for ax, ((task, metric), series) in zip(axes[:, 0], sorted(by_task.items())):
        for label, rows in series:
            standin = rows[0]["standin"]
            ax.plot([r["checkpoint_step"] for r in rows], [r["value"] for r in rows],
                    marker="o", label=label, linestyle="--" if standin else "-",
                    color="0.55" if standin else None)
        if not all(rows[0]["standin"] for _, rows in series):
            _paper_lines(ax, task, metric)
        ax.set_title(f"{task} {metric}", fontsize=10)
        ax.set_xlabel("pretraining step")
        ax.set_ylabel("dev score (%)")
        ax.legend(fontsize=7, loc="best")
    if not by_task:
        axes[0, 0].text(0.5, 0.5, "no pretraining checkpoint evaluated yet", ha="center",
                        va="center")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


__all__ = ["trend_series", "trend_rows", "render_trend", "plot_trend", "series_label"]
