"""`roberta import-corpus`: text, JSONL, Parquet, OpenWebText, Wikipedia → documents."""
from __future__ import annotations

import argparse

from flows.cli.common import (add_document_filters, add_download_options, add_root, add_runner,
                              document_filters, runner_of)

NAME = "import-corpus"
HELP = "text, JSONL, Parquet, OpenWebText, Wikipedia → documents"
DESCRIPTION = ("Import corpora that come as files (the paper's Wikipedia, OpenWebText, "
               "BookCorpus/Stories-style text) into RUN_DIR/corpus/ as source NAME, with "
               "build-corpus's language, quality and dedup steps; dedup runs over every source "
               "in the run root.")

FORMATS = ("auto", "text", "text-blank-lines", "jsonl", "parquet", "owt", "wikipedia")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_root(p)
    p.add_argument("--name", required=True, metavar="NAME",
                   help="source name stored with each document (wikipedia, openwebtext, "
                        "bookcorpus, stories, ...); mixture weights (--mix) refer to it")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="files, directories, globs, http(s) URLs or s3:// (pyarrow "
                        "filesystem) URIs")
    p.add_argument("--format", default="auto", choices=FORMATS,
                   help="auto: by content, whatever the name and compression (bz2, gzip, "
                        "xz, zstd): a MediaWiki dump is wikipedia, one JSON object per line "
                        "jsonl, Parquet parquet, a tar archive owt, else by the name (text: "
                        "one document per file); text-blank-lines: documents separated by "
                        "blank lines (default: %(default)s)")
    p.add_argument("--text-column", default="text",
                   help="JSONL/Parquet field holding the text (default: %(default)s)")
    p.add_argument("--id-column", default="id", help="optional id field (default: %(default)s)")
    p.add_argument("--url-column", default="url", help="optional URL field (default: %(default)s)")
    p.add_argument("--title-column", default="title",
                   help="optional title field (default: %(default)s)")
    add_runner(p)
    add_document_filters(p)
    add_download_options(p)


def run(args: argparse.Namespace) -> int:
    from corpus.import_inputs import resolve_import_inputs
    from flows.build_corpus import corpus_options
    from flows.import_corpus import import_corpus
    from flows.progress import watch_inputs

    sources = resolve_import_inputs(args.inputs)
    options = corpus_options(**document_filters(args))
    with watch_inputs(f"{args.name} files", args.root, [s.input_id for s in sources],
                      unit="records"):
        summary = import_corpus(
            inputs=[s.location for s in sources], name=args.name, root=args.root,
            format=args.format, text_column=args.text_column, id_column=args.id_column,
            url_column=args.url_column, title_column=args.title_column,
            runner=runner_of(args), workers=args.workers, ray_address=args.ray_address,
            options=options, keep_downloads=args.keep_downloads,
            download_retries=args.download_retries)
    return _print_summary(summary)


def _print_summary(summary: dict) -> int:
    """The outcome table, damage, the corpus by source, and a line per input; the exit code."""
    from flows.cli.build_corpus import print_damaged_records, print_inputs, print_outcomes

    console = print_outcomes(f"import-corpus {summary['name']}: outcomes over all records read",
                             summary["outcomes"])
    print_damaged_records(console, summary["errors"])
    d = summary["dedup"]
    console.print(f"corpus after dedup over all sources: [bold]{summary['documents']:,}[/] "
                  f"documents ({d['exact_duplicates']:,} exact and {d['near_duplicates']:,} "
                  f"near duplicates removed) → {summary['documents_dir']}")
    console.print("by source: " + ", ".join(
        f"{k} {v:,}" for k, v in sorted(summary["documents_by_source"].items())))
    return print_inputs(console, summary, unit="records")
