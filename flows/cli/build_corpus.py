"""`roberta build-corpus`: WARC inputs → clean, deduplicated documents."""
from __future__ import annotations

import argparse
import re

from flows.cli.common import (EXIT_OK, EXIT_PARTIAL, add_document_filters, add_download_options,
                              add_root, add_runner, document_filters, positive_int, runner_of)

NAME = "build-corpus"
HELP = "WARC crawl → clean, deduplicated documents"
DESCRIPTION = ("Extract main text from WARC files, keep documents in the wanted languages that "
               "pass the quality rules, remove exact and near duplicates, and write the corpus "
               "as Parquet under RUN_DIR/corpus/.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_root(p)
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="WARC files, directories, globs, http(s) URLs, s3:// (or other "
                        "pyarrow filesystem) URIs, or cc-news:YYYY-MM[..YYYY-MM]")
    add_runner(p)
    add_document_filters(p)
    p.add_argument("--num-perm", type=int, default=128,
                   help="MinHash permutations (default: %(default)s)")
    p.add_argument("--extract-timeout", type=float, default=None, metavar="SECONDS",
                   help="per-page time limit for main-text extraction")
    p.add_argument("--cc-news-base-url", default=None, metavar="URL",
                   help="where CC-NEWS listings and WARCs live (default: Common Crawl's "
                        "public HTTPS endpoint)")
    p.add_argument("--cc-news-limit", type=positive_int, default=None, metavar="N",
                   help="take only the first N WARCs of the CC-NEWS months")
    add_download_options(p)


def run(args: argparse.Namespace) -> int:
    from corpus.inputs import CC_BASE_URL, resolve_inputs
    from flows.build_corpus import build_corpus, corpus_options
    from flows.progress import watch_inputs

    sources = resolve_inputs(args.inputs, cc_news_base_url=args.cc_news_base_url or CC_BASE_URL,
                             cc_news_limit=args.cc_news_limit)
    options = corpus_options(**document_filters(args), num_perm=args.num_perm,
                             extract_timeout_s=args.extract_timeout)
    with watch_inputs("WARC files", args.root, [s.input_id for s in sources], unit="pages"):
        summary = build_corpus(inputs=[s.location for s in sources], root=args.root,
                               runner=runner_of(args), workers=args.workers,
                               ray_address=args.ray_address, options=options,
                               keep_downloads=args.keep_downloads,
                               download_retries=args.download_retries)
    console = print_outcomes("build-corpus: outcomes over all records read", summary["outcomes"])
    console.print(f"documents kept after dedup: [bold]{summary['documents']:,}[/] "
                  f"→ {summary['documents_dir']}", soft_wrap=True)   # paths stay whole
    print_damaged_records(console, summary.get("errors", []))
    return print_inputs(console, summary, unit="pages")


def print_outcomes(title: str, outcomes: dict[str, int]):
    """The outcomes table of a corpus run, most frequent first; returns the console."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    rows = [(outcome, n) for outcome, n in sorted(outcomes.items(), key=lambda kv: -kv[1]) if n]
    if not rows:
        console.print(f"{title}: no records read")
        return console
    table = Table(title=title, min_width=len(title))
    table.add_column("outcome")
    table.add_column("records", justify="right")
    for outcome, n in rows:
        table.add_row(outcome, f"{n:,}")
    console.print(table)
    return console


# Inputs without a problem listed one by one up to this many; problems are always listed.
MAX_CLEAN_LINES = 50


def print_inputs(console, summary: dict, unit: str) -> int:
    """One line per input: what it gave, or why it gave nothing usable; returns the exit code:
    3 when an input could not be processed or gave no usable record, else 0."""
    rows = summary["per_input"]
    clean = [r for r in rows if not (r["problem"] or r["warning"])]
    clean_shown = 0
    for row in rows:
        if not (row["problem"] or row["warning"]):
            clean_shown += 1
            if clean_shown > MAX_CLEAN_LINES:
                continue
        console.print(_input_line(row, unit), overflow="fold", highlight=False)
    if len(clean) > MAX_CLEAN_LINES:
        console.print(f"  … and {len(clean) - MAX_CLEAN_LINES:,} more inputs without problems "
                      "(each one's manifest is under corpus/manifests/)")
    for failed in summary["failed_inputs"]:
        console.print(f"[red]✗[/] {_short(failed['input'])}: [red]not processed[/]: "
                      f"{failed['error']}", overflow="fold", highlight=False)
    if summary["failed_inputs"] or summary["unusable_inputs"]:
        console.print("rerun the same command to retry them; finished inputs are skipped "
                      "(an input that was not found or gave nothing will fail again: fix or "
                      "drop it)")
        return EXIT_PARTIAL
    return EXIT_OK


def _short(location: str) -> str:
    return location.rstrip("/").rsplit("/", 1)[-1] or location


def _input_line(row: dict, unit: str) -> str:
    name = _short(row["input"])
    if row["problem"]:
        return f"[red]✗[/] {name}: [red]{row['problem']}[/]"
    if row["note"]:
        return f"[dim]–[/] {name}: {row['note']}"
    rate = ""
    if row["done_earlier"]:
        rate = ", done earlier"
    elif row["seconds"]:
        rate = f", {row['pages'] / row['seconds']:,.1f} {unit}/s"
    line = (f"{name}: {row['records']:,} records → {row['documents']:,} documents{rate}")
    if row["warning"]:
        return f"[yellow]![/] {line}; [yellow]{row['warning']}[/]"
    return f"[green]✓[/] {line}"


def printable(message: str, limit: int = 160) -> str:
    """A reader's message, which may quote the damaged bytes, as one short printable line:
    the quoted bytes end at the first run of unprintable ones."""
    cut = re.search(r"[^\x20-\x7e]{3,}", message)
    if cut:
        message = message[:cut.start()].rstrip() + " (binary data)"
    return "".join(c if c.isprintable() and c.isascii() else "?" for c in message)[:limit]


def print_damaged_records(console, errors: list[dict]) -> None:
    """Counted in the table; say where and why, or a damaged input looks like a quiet one."""
    if not errors:
        return
    console.print(f"[yellow]{len(errors):,} record(s) skipped as damaged or unextractable[/]"
                  f"{' (the first 5)' if len(errors) > 5 else ''}; each input's manifest "
                  "under corpus/manifests/ lists them all:")
    for e in errors[:5]:
        message = printable(e["message"])
        where = e["where"] if "where" in e else f"at byte {e['offset']}"   # imports: line, page
        console.print(f"  {_short(e['file'])} {where}: {message}", markup=False,
                      highlight=False)
