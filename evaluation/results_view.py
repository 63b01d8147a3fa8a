"""How the results table is shown: results.md, the terminal (`roberta results`) and the chart
of ours against the paper.

Rows on generated stand-in tasks (`standin`) are shown apart, in their own table or panel and
without the paper's numbers: they say the harness learns, not how good the model is, and
must never read as a comparison with the paper. The terminal view fits its width: the columns
a reader needs least are left out first, and a line says which ones and where the whole table
is (results.md has every column).
"""
from __future__ import annotations

import io
import os
from dataclasses import dataclass
from typing import Callable

import pyarrow as pa

REAL_TITLE = "On task data, beside the RoBERTa paper's dev numbers"
STANDIN_TITLE = "On generated stand-in tasks: not comparable with the paper"
STANDIN_NOTE = ("Stand-in tasks are generated in the tasks' formats (`--data-dir synthetic`): "
                "their scores show that finetuning works end to end, not how good the model is.")
NOTE = ("Values in percent: per (lr, batch) the median over seeds of each seed's best dev "
        "epoch, at the best (lr, batch). paper base / paper large: RoBERTa paper dev numbers "
        "(Tables 5, 6, 8; RACE: Table 7, test split); – = not reported. n_train: training "
        "examples used; n_dev: dev examples scored; limits: --limit / --dev-limit; data fp: "
        "fingerprint of the task's data files; predictions: each seed's saved dev predictions.")


def _fmt(v, digits: int = 1) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _limits(r: dict) -> str:
    parts = [f"{name} ≤ {r[key]}" for name, key in (("train", "train_limit"), ("dev", "dev_limit"))
             if r[key] is not None]
    return ", ".join(parts) or "–"


@dataclass(frozen=True)
class Column:
    header: str
    cell: Callable[[dict], str]
    right: bool = False
    paper: bool = False      # one of the paper's numbers: not beside stand-in rows
    full_only: bool = False  # results.md only (too long for a terminal)


COLUMNS = (
    Column("model", lambda r: _fmt(r["model"])),
    Column("step", lambda r: _fmt(r["checkpoint_step"]), right=True),
    Column("task", lambda r: r["task"]),
    Column("metric", lambda r: r["metric"]),
    Column("value", lambda r: _fmt(r["value"]), right=True),
    Column("paper base", lambda r: _fmt(r["paper_base"]), right=True, paper=True),
    Column("paper large", lambda r: _fmt(r["paper_large"]), right=True, paper=True),
    Column("seeds", lambda r: _fmt(r["n_seeds"]), right=True),
    Column("lr", lambda r: "–" if r["lr"] is None else f"{r['lr']:g}", right=True),
    Column("batch", lambda r: _fmt(r["batch_size"]), right=True),
    Column("n_train", lambda r: _fmt(r["n_train"]), right=True),
    Column("n_dev", lambda r: _fmt(r["n_dev"]), right=True),
    Column("limits", _limits),
    Column("data", lambda r: os.path.basename(r["data"]) if r["data"] else "–"),
    Column("data dir", lambda r: _fmt(r["data"]), full_only=True),
    Column("data fp", lambda r: (r["data_fingerprint"] or "–")[:12]),
    Column("predictions", lambda r: _fmt(r["predictions"]), full_only=True),
    Column("time", lambda r: "–" if r["time_s"] is None else f"{r['time_s']:.0f}s", right=True),
    Column("error", lambda r: r["error"].splitlines()[0] if r["error"] else ""),
)
# On a narrow terminal, left out first to last (the rest always shows; errors wrap).
DROP_ORDER = ("time", "data fp", "lr", "batch", "seeds", "data", "limits", "n_train", "model",
              "paper large", "n_dev")


def _split(table: pa.Table) -> tuple[list[dict], list[dict]]:
    """(rows on task data, rows on generated stand-ins)."""
    rows = table.to_pylist()
    return [r for r in rows if not r["standin"]], [r for r in rows if r["standin"]]


def columns_for(standin: bool, full: bool) -> list[Column]:
    return [c for c in COLUMNS if not (standin and c.paper) and (full or not c.full_only)]


def _markdown_table(rows: list[dict], columns: list[Column]) -> str:
    head = "| " + " | ".join(c.header for c in columns) + " |"
    sep = "|" + "".join("---:|" if c.right else "---|" for c in columns)
    body = ["| " + " | ".join(c.cell(r).replace("|", "\\|") for c in columns) + " |"
            for r in rows]
    return "\n".join([head, sep, *body])


def to_markdown(table: pa.Table) -> str:
    """results.md: every column; stand-in rows in their own section, without the paper."""
    real, standin = _split(table)
    out = ["# Finetuning results", ""]
    if real or not standin:
        out += [f"## {REAL_TITLE}", "", _markdown_table(real, columns_for(False, True)), ""]
    if standin:
        out += [f"## {STANDIN_TITLE}", "", STANDIN_NOTE, "",
                _markdown_table(standin, columns_for(True, True)), ""]
    return "\n".join(out + [NOTE, ""])


def _rich_table(rows: list[dict], columns: list[Column], title: str):
    from rich import box
    from rich.table import Table

    t = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left")
    for c in columns:
        t.add_column(c.header, justify="right" if c.right else "left",
                     overflow="fold" if c.header == "error" else "ellipsis",
                     no_wrap=c.header != "error")
    for r in rows:
        t.add_row(*(c.cell(r) for c in columns), style="red" if r["error"] else None)
    return t


def _fits(rows: list[dict], columns: list[Column], width: int) -> bool:
    """Whether the table fits `width` with the error column (if any error) at 20 characters
    or its longest error: errors wrap, every other cell stays whole."""
    from rich.console import Console

    errors = [c.cell(r) for r in rows for c in columns if c.header == "error" and c.cell(r)]
    rest = [c for c in columns if c.header != "error"]
    needed = Console(width=100_000).measure(_rich_table(rows, rest, "")).maximum
    return needed + (min(20, max(map(len, errors))) + 3 if errors else 0) <= width


def fitted_columns(rows: list[dict], standin: bool, width: int | None) -> list[Column]:
    """The terminal's columns for `rows` at `width` (None: all of them)."""
    columns = columns_for(standin, full=False)
    for header in DROP_ORDER if width is not None else ():
        if _fits(rows, columns, width):
            break
        columns = [c for c in columns if c.header != header]
    return columns


def rich_tables(table: pa.Table, width: int | None) -> tuple[list, list[str]]:
    """(renderables for the terminal, headers left out to fit `width`)."""
    real, standin = _split(table)
    out, dropped = [], set()
    for rows, is_standin, title in ((real, False, REAL_TITLE), (standin, True, STANDIN_TITLE)):
        if not rows and (is_standin or standin):
            continue
        columns = fitted_columns(rows, is_standin, width)
        dropped |= {c.header for c in columns_for(is_standin, False)} - {c.header for c in columns}
        out.append(_rich_table(rows, columns, title))
        if is_standin:
            out.append(f"[dim]{STANDIN_NOTE}[/]")
    return out, [c.header for c in COLUMNS if c.header in dropped]


def print_tables(table: pa.Table, full_table: str, console=None) -> None:
    """Print the tables on `console` (default: stdout) fitted to its width, and where
    `full_table` is when columns were left out. Not on a terminal, the default console is as
    wide as the tables: nothing is left out, cut or wrapped."""
    from rich.console import Console

    if console is None:
        console = Console()
        if not console.is_terminal:
            natural = max((Console(width=100_000).measure(t).maximum
                           for t in rich_tables(table, None)[0] if not isinstance(t, str)),
                          default=80)
            console = Console(width=max(80, natural))
    renderables, dropped = rich_tables(table, console.width)
    for r in renderables:
        console.print(r)
    if dropped:
        console.print(f"Left out at this width: {', '.join(dropped)}. Every column: {full_table}",
                      soft_wrap=False)


def latest_values(table: pa.Table) -> list[dict]:
    """The newest successful row per (task, metric, stand-in or not), in table order."""
    latest: dict[tuple, dict] = {}
    for r in table.to_pylist():
        if r["value"] is not None and not r["error"]:
            latest[(r["task"], r["metric"], bool(r["standin"]))] = r
    return list(latest.values())


def _bars(ax, rows: list[dict], with_paper: bool) -> None:
    import numpy as np

    x = np.arange(len(rows))
    series = [("ours", [r["value"] for r in rows])]
    if with_paper:
        series += [("paper RoBERTa-base", [r["paper_base"] for r in rows]),
                   ("paper RoBERTa-large", [r["paper_large"] for r in rows])]
    w = 0.8 / len(series)
    for k, (label, vals) in enumerate(series):
        ax.bar(x + (k - (len(series) - 1) / 2) * w, [np.nan if v is None else v for v in vals],
               w, label=label, color=None if with_paper else "0.6", hatch=None if with_paper
               else "//")
    ax.set_xticks(x, [f"{r['task']}\n{r['metric']}" for r in rows], fontsize=8)
    ax.set_ylabel("dev score (%)")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=3,
              frameon=False)  # below the axes: bars reach the top


def plot_png(table: pa.Table) -> bytes:
    """Grouped bars: our newest value per (task, metric) against the paper's BASE and LARGE;
    stand-in tasks in a panel of their own, grey and hatched, without the paper."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = latest_values(table)
    panels = [(group, title) for group, title in
              (([r for r in rows if not r["standin"]], "ours vs the RoBERTa paper (task data)"),
               ([r for r in rows if r["standin"]], STANDIN_TITLE)) if group]
    width = max([6.0] + [0.9 * len(g) + 2 for g, _ in panels])
    fig, axes = plt.subplots(max(1, len(panels)), 1, figsize=(width, 4.0 * max(1, len(panels))),
                             squeeze=False)
    for ax, (group, title) in zip(axes[:, 0], panels):
        _bars(ax, group, with_paper=title != STANDIN_TITLE)
        ax.set_title(title, fontsize=10)
    if not panels:
        axes[0, 0].text(0.5, 0.5, "no results yet", ha="center", va="center")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


__all__ = ["to_markdown", "print_tables", "rich_tables", "fitted_columns", "plot_png",
           "latest_values", "COLUMNS", "STANDIN_TITLE", "REAL_TITLE"]
