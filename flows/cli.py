"""`roberta`: one subcommand per flow, each taking `--root RUN_DIR`.

Exit codes: 0 the run completed (damaged inputs are counted in its reports, not fatal);
2 bad arguments or inputs (missing path, unreachable listing); 3 the run finished but some
inputs could not be processed at all (rerun to retry them); 1 anything else.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from runroot.storage import is_uri, under

DEFAULT_ROOT = "./runs/default"

EXIT_OK, EXIT_ERROR, EXIT_BAD_INPUT, EXIT_PARTIAL = 0, 1, 2, 3


def int_at_least(minimum: int):
    """An argparse type: an integer >= `minimum`."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value
    return parse


# Counts and sizes: 0 would otherwise slip through as 'use the preset' wherever a caller
# writes `value or default`.
positive_int = int_at_least(1)


def number_list(kind: type, minimum: float | None = None):
    """An argparse type: a non-empty comma-separated list of `kind` (int or float), each
    >= `minimum` when given."""
    noun = "integers" if kind is int else "numbers"

    def parse(text: str) -> list:
        try:
            values = [kind(x) for x in text.split(",") if x.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a list of {noun}: {text!r}") from None
        if not values:
            raise argparse.ArgumentTypeError(f"no {noun} in {text!r}")
        if minimum is not None and any(v < minimum for v in values):
            raise argparse.ArgumentTypeError(f"must all be at least {minimum}, got {text!r}")
        return values
    return parse


def manifest_counter(root: str, total: int, input_ids: set[str] | None = None):
    """(count_done, total) for `watch_files`: the manifests of finished inputs (those of
    `input_ids`, default all) under a local root. A URI root (s3://...) gets a spinner:
    polling an object store twice a second is not worth a progress count."""
    if is_uri(root):
        return (lambda: 0), None
    manifests = Path(root) / "corpus" / "manifests"

    def done() -> int:
        if not manifests.exists():
            return 0
        return sum(1 for p in manifests.glob("*.json") if input_ids is None or p.stem in input_ids)
    return done, total


def _add_root(p: argparse.ArgumentParser) -> None:
    p.add_argument("--root", default=DEFAULT_ROOT, metavar="RUN_DIR",
                   help="run root holding every stage's artifacts (default: %(default)s)")


def _add_runner(p: argparse.ArgumentParser, default: str = "processes") -> None:
    from flows.runtime import RUNNERS

    p.add_argument("--runner", choices=RUNNERS, default=default,
                   help="how the fan-out runs: a thread pool, a process pool, or Ray "
                        "(default: %(default)s)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="parallel workers (default: one per CPU core)")
    p.add_argument("--address", dest="ray_address", default=None, metavar="RAY_ADDRESS",
                   help="attach to this Ray cluster (e.g. ray://head:10001 or auto); "
                        "implies --runner ray. Default: a local Ray instance when needed")


def add_document_filters(p: argparse.ArgumentParser) -> None:
    """The language, quality and dedup knobs build-corpus and import-corpus share."""
    p.add_argument("--languages", default="en",
                   help="comma-separated ISO 639-1 codes to keep (default: %(default)s)")
    p.add_argument("--lang-threshold", type=float, default=None,
                   help="minimum language-ID probability to keep a document")
    p.add_argument("--min-words", type=int, default=None,
                   help="drop documents with fewer words than this")
    p.add_argument("--near-dup-threshold", type=float, default=0.8,
                   help="MinHash Jaccard threshold for near duplicates (default: %(default)s)")


def add_download_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--download-retries", type=int, default=4, metavar="N",
                   help="retries with exponential backoff per remote file (default: %(default)s)")
    p.add_argument("--keep-downloads", action="store_true",
                   help="keep fetched remote files after their shard is written")


def _add_sweep(p: argparse.ArgumentParser) -> None:
    """The finetuning sweep, the paper's Table 10 unless overridden."""
    p.add_argument("--seeds", type=_int_list, default=None, metavar="1,2,3",
                   help="seeds (default: the paper's five)")
    p.add_argument("--lrs", type=_float_list, default=None, metavar="1e-5,2e-5",
                   help="learning rates (default: the paper's Table 10 sweep)")
    p.add_argument("--batch-sizes", type=_int_list, default=None, metavar="16,32",
                   help="batch sizes (default: the paper's Table 10 sweep)")
    p.add_argument("--epochs", type=int, default=None, help="epochs (default: Table 10)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="roberta", description="RoBERTa pretraining pipeline: every subcommand is a "
        "Prefect flow; with no Prefect server configured it runs in ephemeral mode.")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show Prefect's flow and task logs on the console")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("build-corpus", help="WARC crawl → clean, deduplicated documents",
                       description="Extract main text from WARC files, keep documents in the "
                       "wanted languages that pass the quality rules, remove exact and near "
                       "duplicates, and write the corpus as Parquet under RUN_DIR/corpus/.")
    _add_root(p)
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="WARC files, directories, globs, http(s) URLs, s3:// (or other "
                        "pyarrow filesystem) URIs, or cc-news:YYYY-MM[..YYYY-MM]")
    _add_runner(p)
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
    p.set_defaults(handler=_build_corpus)

    from flows.import_corpus_cli import add_arguments as add_import_arguments
    from flows.import_corpus_cli import run_from_cli as run_import_corpus

    p = sub.add_parser("import-corpus", help="text, JSONL, Parquet, OpenWebText, Wikipedia → "
                       "documents", description="Import corpora that come as files (the "
                       "paper's Wikipedia, OpenWebText, BookCorpus/Stories-style text) into "
                       "RUN_DIR/corpus/ as source NAME, with build-corpus's language, quality "
                       "and dedup steps; dedup runs over every source in the run root.")
    add_import_arguments(p)
    p.set_defaults(handler=run_import_corpus)

    p = sub.add_parser("train-tokenizer", help="corpus → 50K byte-level BPE",
                       description="Train RoBERTa's byte-level BPE on RUN_DIR/corpus/documents "
                       "and write tokenizer.json, vocab.json and merges.txt to RUN_DIR/tokenizer/.")
    _add_root(p)
    p.add_argument("--vocab-size", type=int, default=50265,
                   help="vocabulary size, special tokens included (default: %(default)s)")
    p.add_argument("--sample-fraction", type=float, default=1.0,
                   help="train on this deterministic fraction of documents (default: all)")
    p.add_argument("--min-frequency", type=int, default=2,
                   help="minimum pair frequency for a merge (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the document sample")
    p.add_argument("--existing", metavar="DIR", default=None,
                   help="reuse this tokenizer directory (tokenizer.json, or vocab.json + "
                        "merges.txt such as GPT-2's) instead of training")
    _add_mix(p)
    p.set_defaults(handler=_train_tokenizer)

    p = sub.add_parser("shard-corpus", help="documents → packed token blocks",
                       description="Encode RUN_DIR/corpus/documents with RUN_DIR/tokenizer and "
                       "pack blocks in one of the paper's input formats under RUN_DIR/shards/.")
    _add_root(p)
    p.add_argument("--format", default="full-sentences",
                   choices=["full-sentences", "doc-sentences", "segment-pair", "sentence-pair"],
                   help="the paper's input format, Section 4.2 (default: %(default)s)")
    p.add_argument("--block-size", type=int, default=512,
                   help="tokens per block, <s> included (default: %(default)s)")
    p.add_argument("--valid-fraction", type=float, default=0.01,
                   help="share of documents held out for validation (default: %(default)s)")
    p.add_argument("--static-masks", type=int, default=0, metavar="K",
                   help="store K fixed masks per block, as the original BERT (default: 0, "
                        "dynamic masking at training time)")
    p.add_argument("--seed", type=int, default=0, help="seed for NSP negatives and static masks")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="encoding processes (default: one per CPU core)")
    _add_mix(p)
    p.set_defaults(handler=_shard_corpus)

    from flows.pretrain_cli import add_arguments as add_pretrain_arguments, run_from_cli

    p = sub.add_parser("pretrain", help="packed blocks → RoBERTa checkpoints (Ray Train)",
                       description="Pretrain a RoBERTa encoder on RUN_DIR/shards with the "
                       "paper's recipe (dynamic masking, no NSP, AdamW β2=0.98, linear "
                       "warm-up and decay, large batches by accumulation) on Ray Train; "
                       "checkpoints in the Hugging Face layout under RUN_DIR/pretrain/RUN/.")
    add_pretrain_arguments(p)
    p.set_defaults(handler=run_from_cli)

    from flows.ablations_cli import add_arguments as add_ablations_arguments
    from flows.ablations_cli import run_from_cli as run_ablations

    p = sub.add_parser("ablations", help="the paper's Section 4 comparisons at a chosen scale",
                       description="Rerun Tables 1-3 and Section 4.4 (masking, input format/NSP, "
                       "batch size, BPE) on RUN_DIR's corpus: one pretrain + finetune-eval per "
                       "arm, tables with the paper's numbers under RUN_DIR/results/ablations/.")
    add_ablations_arguments(p)
    p.set_defaults(handler=run_ablations)

    p = sub.add_parser("finetune-eval", help="finetune and evaluate on GLUE, SQuAD, RACE",
                       description="Finetune a checkpoint on each task over the paper's "
                       "hyperparameter sweep (Table 10), one job per (task, lr, batch, seed), "
                       "and append the median-over-seeds results to RUN_DIR/results/.")
    _add_root(p)
    p.add_argument("--data-dir", required=True, metavar="DIR",
                   help="task data: GLUE TSV dirs (MRPC/train.tsv, ...), SQuAD/*.json, RACE/; "
                        "or 'synthetic' for generated SST-2 and SQuAD 1.1 stand-ins under "
                        "RUN_DIR/eval-data, as `roberta pipeline` uses")
    p.add_argument("--tasks", default=None,
                   help="comma-separated tasks (cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte, "
                        "wnli, squad1, squad2, race), or glue / all (default: mrpc, or "
                        "sst2,squad1 with --data-dir synthetic)")
    p.add_argument("--checkpoint", default=None, metavar="DIR",
                   help="a pretrain checkpoint or any HF RoBERTa directory (default: the "
                        "newest pretrain checkpoint under RUN_DIR)")
    p.add_argument("--nightly", action="store_true",
                   help="evaluate the newest checkpoint without results; do nothing if none")
    _add_sweep(p)
    p.add_argument("--limit", type=int, default=None, metavar="N",
                   help="at most N training examples per task (smoke runs)")
    p.add_argument("--device", choices=["cpu", "cuda"], default=None,
                   help="default: cuda when available")
    _add_runner(p, default="threads")
    p.set_defaults(handler=_finetune_eval)

    p = sub.add_parser("pipeline", help="all five stages, each skipped when already done",
                       description="build-corpus → train-tokenizer → shard-corpus → pretrain → "
                       "finetune-eval under one run root; a rerun skips finished stages and "
                       "resumes an interrupted pretraining run.")
    _add_root(p)
    p.add_argument("inputs", nargs="*", metavar="INPUT",
                   help="build-corpus inputs (default: the bundled sample crawl)")
    p.add_argument("--vocab-size", type=int, default=50265, help="BPE vocabulary size")
    p.add_argument("--format", default="full-sentences",
                   choices=["full-sentences", "doc-sentences", "segment-pair", "sentence-pair"],
                   help="shard-corpus input format (default: %(default)s)")
    p.add_argument("--block-size", type=positive_int, default=512, help="tokens per block")
    p.add_argument("--config", default="base", choices=["tiny", "small", "base", "large"],
                   help="pretrain preset (default: %(default)s)")
    p.add_argument("--steps", type=positive_int, default=None, help="pretrain updates (default: preset)")
    p.add_argument("--batch-size", type=positive_int, default=None, metavar="SEQS",
                   help="sequences per update (default: preset)")
    p.add_argument("--train-workers", type=positive_int, default=1, metavar="N",
                   help="Ray Train workers (default: %(default)s)")
    p.add_argument("--gpu", action="store_true", help="one GPU per Ray Train worker")
    p.add_argument("--address", default=None, metavar="RAY_ADDRESS",
                   help="Ray cluster for the fan-outs and training (default: local)")
    p.add_argument("--tasks", default=None,
                   help="finetune-eval tasks (default: glue, or sst2,squad1 with synthetic data)")
    p.add_argument("--data-dir", default="synthetic", metavar="DIR",
                   help="task data, or 'synthetic' for generated stand-ins (default)")
    _add_sweep(p)
    p.set_defaults(handler=_pipeline)

    p = sub.add_parser("results", help="print the results table",
                       description="Print RUN_DIR/results/results.parquet, newest rows last.")
    _add_root(p)
    p.set_defaults(handler=_results)
    return parser


def _add_mix(p: argparse.ArgumentParser) -> None:
    def mix(text: str) -> dict[str, float]:
        from corpus.mixture import parse_mix

        try:
            return parse_mix(text) or {}
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    p.add_argument("--mix", type=mix, default=None, metavar="SOURCE=W,...",
                   help="mixture weights per source (import-corpus --name; build-corpus "
                        "documents are cc-news), e.g. wikipedia=2,cc-news=1 up-samples "
                        "Wikipedia 2x; fractional weights sample documents by hash; "
                        "unnamed sources weigh 1 (default: the corpus as it is)")


def _int_list(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _float_list(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def _error_text(exc: Exception) -> str:
    """The message of `exc`; a KeyError's str() would wrap it in quotes."""
    return str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)


def _finetune_eval(args: argparse.Namespace) -> int:
    from flows.finetune_eval import check_inputs, finetune_eval
    from flows.progress import count_files, watch_files

    workers = args.workers or 1
    try:   # before Prefect starts: bad arguments and missing inputs fail in a second
        check_inputs(args.root, args.data_dir, args.tasks, checkpoint=args.checkpoint,
                     nightly=args.nightly, lrs=args.lrs, batch_sizes=args.batch_sizes,
                     epochs=args.epochs, limit=args.limit, workers=workers)
    except (FileNotFoundError, ValueError, KeyError) as exc:
        print(f"roberta finetune-eval: {_error_text(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        with watch_files("finetuning jobs", count_files(Path(args.root) / "results" / "jobs",
                                                         "*/*.json"), total=None):
            out = finetune_eval(
                root=args.root, data_dir=args.data_dir, tasks=args.tasks,
                checkpoint=args.checkpoint, nightly=args.nightly, seeds=args.seeds,
                lrs=args.lrs, batch_sizes=args.batch_sizes, epochs=args.epochs,
                limit=args.limit, device=args.device,
                runner="ray" if args.ray_address else args.runner,
                workers=workers, ray_address=args.ray_address)
    except (FileNotFoundError, ValueError, KeyError) as exc:
        print(f"roberta finetune-eval: {_error_text(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if out["evaluated"] is None:
        print("nothing to evaluate: every checkpoint already has results")
        return EXIT_OK
    from evaluation.results import print_results

    print_results(args.root)   # full width when stdout is not a terminal
    if out.get("synthetic_tasks"):
        print(f"Tasks are generated stand-ins in SST-2/SQuAD format ({out['data_dir']}): the "
              "scores show the harness learns; the paper's columns are for reference only.")
    if out["rows"] and not out.get("appended"):
        print("no rows appended: these results are already in the table (cached jobs)")
    if out["failed_jobs"]:
        print(f"{out['failed_jobs']} job(s) failed: see the error column; rerun to retry them")
        return EXIT_PARTIAL
    return EXIT_OK


def _pipeline(args: argparse.Namespace) -> int:
    from flows.pipeline import pipeline
    from flows.progress import cli_progress

    try:
        with cli_progress():
            out = pipeline(inputs=args.inputs or None, root=args.root,
                           vocab_size=args.vocab_size, format=args.format,
                           block_size=args.block_size, config=args.config, steps=args.steps,
                           batch_size=args.batch_size, train_workers=args.train_workers,
                           gpu=args.gpu, address=args.address, tasks=args.tasks,
                           data_dir=args.data_dir, seeds=args.seeds, lrs=args.lrs,
                           batch_sizes=args.batch_sizes, epochs=args.epochs)
    except (FileNotFoundError, ValueError) as exc:
        print(f"roberta pipeline: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    from rich.console import Console

    from evaluation.results import print_results

    console = Console(width=None if sys.stdout.isatty() else 160)
    print_results(args.root, console=console)
    if out["synthetic_tasks"]:
        console.print("[dim]Tasks are synthetic stand-ins in GLUE/SQuAD format (no task data "
                      "given): the scores show the harness learns, the paper's columns are for "
                      "reference only.[/]")
    if out["skipped"]:
        console.print(f"already done, skipped: {', '.join(out['skipped'])}")
    console.print("[bold]Where everything is[/]")
    for name, path in out["artifacts"].items():
        console.print(f"  {name:16s} {Path(path).resolve()}")
    return EXIT_PARTIAL if out["failed_jobs"] else EXIT_OK


def _results(args: argparse.Namespace) -> int:
    from evaluation.results import paths, print_results

    if not Path(paths(args.root)["parquet"]).exists():
        print(f"roberta results: no results under {args.root}: run finetune-eval first",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    print_results(args.root)   # full width when stdout is not a terminal
    return EXIT_OK


def _run_stage(name: str, call) -> tuple[int, dict | None]:
    """Run an in-process stage with a progress bar; library errors become exit code 2."""
    from flows.progress import cli_progress

    try:
        with cli_progress():
            return EXIT_OK, call()
    except (FileNotFoundError, ValueError) as exc:
        print(f"roberta {name}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT, None


def _train_tokenizer(args: argparse.Namespace) -> int:
    from flows.train_tokenizer import train_tokenizer_flow

    code, info = _run_stage("train-tokenizer", lambda: train_tokenizer_flow(
        root=args.root, vocab_size=args.vocab_size, sample_fraction=args.sample_fraction,
        min_frequency=args.min_frequency, seed=args.seed, existing=args.existing,
        mix=args.mix))
    if info:
        print(f"tokenizer: {info['vocab_size']:,} ids (<mask>={info['mask_id']}) → "
              f"{under(args.root, 'tokenizer')}")
    return code


def _shard_corpus(args: argparse.Namespace) -> int:
    from flows.shard_corpus import shard_corpus_flow

    code, manifest = _run_stage("shard-corpus", lambda: shard_corpus_flow(
        root=args.root, format=args.format, block_size=args.block_size,
        valid_fraction=args.valid_fraction, static_masks=args.static_masks, seed=args.seed,
        workers=args.workers, mix=args.mix))
    if manifest:
        for split, s in manifest["splits"].items():
            print(f"{split}: {s['blocks']:,} blocks, {s['tokens']:,} tokens, "
                  f"{s['documents']:,} documents")
        if manifest.get("tokens_by_source"):
            print("content tokens by source: " + ", ".join(
                f"{k} {v:,}" for k, v in manifest["tokens_by_source"].items()))
        print(f"shards → {under(args.root, 'shards')}")
    return code


def _build_corpus(args: argparse.Namespace) -> int:
    from corpus.inputs import CC_BASE_URL, InputError, resolve_inputs
    from flows.build_corpus import BuildCorpusError, build_corpus, corpus_options
    from flows.progress import watch_files

    base_url = args.cc_news_base_url or CC_BASE_URL
    try:
        sources = resolve_inputs(args.inputs, cc_news_base_url=base_url,
                                 cc_news_limit=args.cc_news_limit)
    except InputError as exc:
        print(f"roberta build-corpus: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    options = corpus_options(languages=args.languages.split(","),
                             lang_threshold=args.lang_threshold, min_words=args.min_words,
                             near_dup_threshold=args.near_dup_threshold,
                             num_perm=args.num_perm, extract_timeout_s=args.extract_timeout)
    with watch_files("WARC files", *manifest_counter(args.root, len(sources))):
        try:
            summary = build_corpus(inputs=[s.location for s in sources], root=args.root,
                               runner="ray" if args.ray_address else args.runner,
                               workers=args.workers, ray_address=args.ray_address,
                               options=options, keep_downloads=args.keep_downloads,
                               download_retries=args.download_retries)
        except BuildCorpusError as exc:
            print(f"roberta build-corpus: {exc}", file=sys.stderr)
            return EXIT_ERROR
    _print_corpus_summary(summary)
    return EXIT_PARTIAL if summary["failed_inputs"] else EXIT_OK


def _print_corpus_summary(summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="build-corpus: outcomes over all records read")
    table.add_column("outcome")
    table.add_column("records", justify="right")
    for outcome, n in sorted(summary["outcomes"].items(), key=lambda kv: -kv[1]):
        if n == 0:
            continue
        table.add_row(outcome, f"{n:,}")
    console = Console()
    console.print(table)
    console.print(f"documents kept after dedup: [bold]{summary['documents']:,}[/] "
                  f"→ {summary['documents_dir']}", soft_wrap=True)   # paths stay whole
    errors = summary.get("errors", [])
    if errors:  # counted above; say where and why, or a damaged input looks like a quiet one
        console.print(f"[yellow]{len(errors):,} record(s) skipped as damaged or unextractable[/]"
                      f"{' (the first 5)' if len(errors) > 5 else ''}; each input's manifest "
                      "under corpus/manifests/ lists them all:")
        for e in errors[:5]:
            # readers quote the damaged bytes: keep the line printable and short
            message = "".join(c if c.isprintable() and c.isascii() else "?"
                              for c in e["message"])[:160]
            console.print(f"  {e['file']} at byte {e['offset']}: {message}", markup=False,
                          highlight=False)
    for failed in summary["failed_inputs"]:
        console.print(f"[red]not processed[/]: {failed['input']}: {failed['error']}")
    if summary["failed_inputs"]:
        console.print("rerun the same command to retry them; finished inputs are skipped "
                      "(an input that was not found will fail again: fix or drop it)")


def _quiet_prefect_console(verbose: bool) -> None:
    """The CLI shows its own progress and summary; Prefect's per-run console logs and Ray
    workers' logs stay available with --verbose, and always reach the Prefect UI and the Ray
    dashboard."""
    if not verbose:
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
        os.environ.setdefault("ROBERTA_RAY_LOG_TO_DRIVER", "0")
    else:  # asked for: wins over a quieting inherited from a parent `roberta` process
        os.environ["PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"] = os.environ.get(
            "PREFECT_LOGGING_LEVEL", "INFO")
        os.environ["ROBERTA_RAY_LOG_TO_DRIVER"] = "1"
    # An ephemeral server on an offline machine should not try to phone home.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _quiet_prefect_console(args.verbose)
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
