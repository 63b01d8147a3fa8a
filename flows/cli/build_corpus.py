"""`roberta build-corpus`: WARC inputs → clean, deduplicated documents."""
from __future__ import annotations

import argparse

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
    from flows.progress import manifest_counter, watch_files

    sources = resolve_inputs(args.inputs, cc_news_base_url=args.cc_news_base_url or CC_BASE_URL,
                             cc_news_limit=args.cc_news_limit)
    options = corpus_options(**document_filters(args), num_perm=args.num_perm,
                             extract_timeout_s=args.extract_timeout)
    with watch_files("WARC files", *manifest_counter(args.root, len(sources))):
        summary = build_corpus(inputs=[s.location for s in sources], root=args.root,
                               runner=runner_of(args), workers=args.workers,
                               ray_address=args.ray_address, options=options,
                               keep_downloads=args.keep_downloads,
                               download_retries=args.download_retries)
    console = print_outcomes("build-corpus: outcomes over all records read", summary["outcomes"])
    console.print(f"documents kept after dedup: [bold]{summary['documents']:,}[/] "
                  f"→ {summary['documents_dir']}", soft_wrap=True)   # paths stay whole
    _print_damaged_records(console, summary.get("errors", []))
    for failed in summary["failed_inputs"]:
        console.print(f"[red]not processed[/]: {failed['input']}: {failed['error']}")
    if summary["failed_inputs"]:
        console.print("rerun the same command to retry them; finished inputs are skipped "
                      "(an input that was not found will fail again: fix or drop it)")
    return EXIT_PARTIAL if summary["failed_inputs"] else EXIT_OK


def print_outcomes(title: str, outcomes: dict[str, int]):
    """The outcomes table of a corpus run, most frequent first; returns the console."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("outcome")
    table.add_column("records", justify="right")
    for outcome, n in sorted(outcomes.items(), key=lambda kv: -kv[1]):
        if n:
            table.add_row(outcome, f"{n:,}")
    console = Console()
    console.print(table)
    return console


def _print_damaged_records(console, errors: list[dict]) -> None:
    """Counted in the table; say where and why, or a damaged input looks like a quiet one."""
    if not errors:
        return
    console.print(f"[yellow]{len(errors):,} record(s) skipped as damaged or unextractable[/]"
                  f"{' (the first 5)' if len(errors) > 5 else ''}; each input's manifest "
                  "under corpus/manifests/ lists them all:")
    for e in errors[:5]:
        # readers quote the damaged bytes: keep the line printable and short
        message = "".join(c if c.isprintable() and c.isascii() else "?"
                          for c in e["message"])[:160]
        console.print(f"  {e['file']} at byte {e['offset']}: {message}", markup=False,
                      highlight=False)
