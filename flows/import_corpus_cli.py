"""`roberta import-corpus`: arguments and the handler, kept apart from flows/cli.py like
flows/pretrain_cli.py (building the parser imports no Prefect)."""
from __future__ import annotations

import argparse
import sys

FORMATS = ("auto", "text", "text-blank-lines", "jsonl", "parquet", "owt", "wikipedia")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from flows.cli import DEFAULT_ROOT, _add_runner, add_document_filters, add_download_options

    p.add_argument("--root", default=DEFAULT_ROOT, metavar="RUN_DIR",
                   help="run root holding every stage's artifacts (default: %(default)s)")
    p.add_argument("--name", required=True, metavar="NAME",
                   help="source name stored with each document (wikipedia, openwebtext, "
                        "bookcorpus, stories, ...); mixture weights (--mix) refer to it")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="files, directories, globs, http(s) URLs or s3:// (pyarrow "
                        "filesystem) URIs")
    p.add_argument("--format", default="auto", choices=FORMATS,
                   help="auto: by file name (*.xml.bz2 wikipedia, *.jsonl, *.parquet, "
                        "*.tar/.tar.gz/.tar.xz/.xz owt, else text); text: one document per "
                        "file; text-blank-lines: documents separated by blank lines "
                        "(default: %(default)s)")
    p.add_argument("--text-column", default="text",
                   help="JSONL/Parquet field holding the text (default: %(default)s)")
    p.add_argument("--id-column", default="id", help="optional id field (default: %(default)s)")
    p.add_argument("--url-column", default="url", help="optional URL field (default: %(default)s)")
    p.add_argument("--title-column", default="title",
                   help="optional title field (default: %(default)s)")
    _add_runner(p)
    add_document_filters(p)
    add_download_options(p)


def run_from_cli(args: argparse.Namespace) -> int:
    from corpus.import_inputs import resolve_import_inputs
    from corpus.inputs import InputError
    from flows.build_corpus import BuildCorpusError, corpus_options
    from flows.cli import EXIT_BAD_INPUT, EXIT_ERROR, EXIT_OK, EXIT_PARTIAL, manifest_counter
    from flows.progress import watch_files

    try:
        sources = resolve_import_inputs(args.inputs)
    except InputError as exc:
        print(f"roberta import-corpus: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    options = corpus_options(languages=args.languages.split(","),
                             lang_threshold=args.lang_threshold, min_words=args.min_words,
                             near_dup_threshold=args.near_dup_threshold)
    from flows.import_corpus import import_corpus

    with watch_files(f"{args.name} files", *manifest_counter(
            args.root, len(sources), {s.input_id for s in sources})):
        try:
            summary = import_corpus(
                inputs=[s.location for s in sources], name=args.name, root=args.root,
                format=args.format, text_column=args.text_column, id_column=args.id_column,
                url_column=args.url_column, title_column=args.title_column,
                runner="ray" if args.ray_address else args.runner, workers=args.workers,
                ray_address=args.ray_address, options=options,
                keep_downloads=args.keep_downloads, download_retries=args.download_retries)
        except ValueError as exc:
            print(f"roberta import-corpus: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        except BuildCorpusError as exc:
            print(f"roberta import-corpus: {exc}", file=sys.stderr)
            return EXIT_ERROR
    _print_summary(summary)
    return EXIT_PARTIAL if summary["failed_inputs"] else EXIT_OK


def _print_summary(summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"import-corpus {summary['name']}: outcomes over all records read")
    table.add_column("outcome")
    table.add_column("records", justify="right")
    for outcome, n in sorted(summary["outcomes"].items(), key=lambda kv: -kv[1]):
        if n:
            table.add_row(outcome, f"{n:,}")
    console = Console()
    console.print(table)
    for e in summary["errors"][:20]:
        console.print(f"[yellow]damaged[/]: {e['file']} {e.get('where', '')}: {e['message']}")
    if len(summary["errors"]) > 20:
        console.print(f"... {len(summary['errors']) - 20} more in the manifests")
    d = summary["dedup"]
    console.print(f"corpus after dedup over all sources: [bold]{summary['documents']:,}[/] "
                  f"documents ({d['exact_duplicates']:,} exact and {d['near_duplicates']:,} "
                  f"near duplicates removed) → {summary['documents_dir']}")
    console.print("by source: " + ", ".join(
        f"{k} {v:,}" for k, v in sorted(summary["documents_by_source"].items())))
    for failed in summary["failed_inputs"]:
        console.print(f"[red]not imported[/]: {failed['input']}: {failed['error']}")
