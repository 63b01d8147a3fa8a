"""What every `roberta` subcommand shares: exit codes, argument types, option groups, and
`run_command`, the one place exceptions become exit codes.

Imports nothing heavier than the standard library (and, lazily, tiny config modules), so
building the parser and `roberta --help` never import Prefect or torch.
"""
from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path
from types import ModuleType

from runroot import layout

# 0 the run completed (damaged inputs are counted in its reports, not fatal); 2 bad arguments
# or inputs (missing path, unreachable listing, a --root that is a file); 3 the run finished but
# some inputs or jobs could not be processed, or an input gave no usable record (rerun to retry
# them); 1 the run failed; 130 interrupted (Ctrl-C).
EXIT_OK, EXIT_ERROR, EXIT_BAD_INPUT, EXIT_PARTIAL = 0, 1, 2, 3
EXIT_INTERRUPTED = 130

# What a bad argument or input raises, found before or during the run: the libraries' own
# errors for these (InputError, PretrainConfigError, ShardError, RunExistsError, ...) derive
# from them.
BAD_INPUT_ERRORS = (ValueError, KeyError, FileNotFoundError, FileExistsError, NotADirectoryError)


class RunFailed(RuntimeError):
    """The run failed (exit 1); a subcommand raises it with the one line a user should read,
    e.g. how to resume."""


# ---------------------------------------------------------------- running a subcommand

def error_text(exc: BaseException) -> str:
    """The message of `exc`; a KeyError's str() would wrap it in quotes."""
    return str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)


def one_line(text: str) -> str:
    """The first non-empty line: Ray and Prefect errors carry a whole remote traceback."""
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _failure_text(exc: BaseException) -> str:
    text = one_line(error_text(exc))
    if isinstance(exc, RunFailed):
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def run_command(command: ModuleType, args: argparse.Namespace) -> int:
    """Run a subcommand module's `run(args)` and turn what it raises into an exit code, the
    same way for every subcommand: bad arguments or inputs are 2 with `roberta <cmd>: <message>`
    on stderr; any other failure is 1 with a one-line message (the traceback too with -v);
    Ctrl-C is 130."""
    name = command.NAME
    try:
        return command.run(args)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BAD_INPUT_ERRORS as exc:
        print(f"roberta {name}: {error_text(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as exc:  # noqa: BLE001 - the CLI's last word on any failure
        if getattr(args, "verbose", False):
            traceback.print_exception(exc)
        print(f"roberta {name}: {_failure_text(exc)}", file=sys.stderr)
        return EXIT_ERROR


def with_progress_bars(stage_flow, **parameters):
    """Run a flow whose work runs in this process with the CLI's progress bars, fed by the
    libraries' progress callbacks (flows/progress.py: StageProgress)."""
    from flows.progress import cli_progress

    with cli_progress():
        return stage_flow(**parameters)


# ---------------------------------------------------------------- argument types

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
# A byte-level BPE holds the 256 byte symbols and RoBERTa's 5 specials (corpus/bpe.py).
vocab_size = int_at_least(256 + 5)


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


def mixture(text: str) -> dict[str, float]:
    """An argparse type: mixture weights per source, SOURCE=W,..."""
    from corpus.mixture import parse_mix

    try:
        return parse_mix(text) or {}
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# ---------------------------------------------------------------- option groups

def run_root(text: str) -> str:
    """An argparse type: a run root, a folder (created when missing) or a URI. A path that is
    a file, or lies under one, is refused here, naming the root, before any stage starts
    (it used to fail inside every worker, blamed on the inputs)."""
    if "://" in text:
        return text
    path = Path(text).expanduser()
    for folder in (path, *path.parents):
        if folder.exists():
            if not folder.is_dir():
                where = "is a file" if folder == path else f"lies under the file {folder}"
                raise argparse.ArgumentTypeError(
                    f"{text} {where}: the run root must be a folder (created when missing)")
            break
    return text


def add_root(p: argparse.ArgumentParser, help: str | None = None) -> None:
    p.add_argument("--root", type=run_root, default=layout.DEFAULT_ROOT, metavar="RUN_DIR",
                   help=(help or "run root holding every stage's artifacts") +
                   " (default: %(default)s)")


def add_model_preset(p: argparse.ArgumentParser, default: str | None, help: str) -> None:
    """--config; a default of None leaves saying the default to `help`."""
    from training.config import ModelConfig

    p.add_argument("--config", default=default, choices=ModelConfig.preset_names(),
                   help=help if default is None else f"{help} (default: %(default)s)")


def add_runner(p: argparse.ArgumentParser, default: str = "processes") -> None:
    """The fan-out's task runner: --runner, --workers, --address."""
    from flows.runtime import RUNNERS

    p.add_argument("--runner", choices=RUNNERS, default=default,
                   help="how the fan-out runs: a thread pool, a process pool, or Ray "
                        "(default: %(default)s)")
    p.add_argument("--workers", type=positive_int, default=None, metavar="N",
                   help="parallel workers (default: one per CPU core)")
    p.add_argument("--address", dest="ray_address", default=None, metavar="RAY_ADDRESS",
                   help="attach to this Ray cluster (e.g. ray://head:10001 or auto); "
                        "implies --runner ray. Default: a local Ray instance when needed")


def runner_of(args: argparse.Namespace) -> str:
    """--address implies --runner ray."""
    return "ray" if args.ray_address else args.runner


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


def document_filters(args: argparse.Namespace) -> dict:
    """`add_document_filters`' values as keyword arguments of `corpus_options`."""
    return dict(languages=args.languages.split(","), lang_threshold=args.lang_threshold,
                min_words=args.min_words, near_dup_threshold=args.near_dup_threshold)


def add_download_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--download-retries", type=int_at_least(0), default=4, metavar="N",
                   help="retries with exponential backoff per remote file (default: %(default)s)")
    p.add_argument("--keep-downloads", action="store_true",
                   help="keep fetched remote files after their shard is written")


def add_sweep(p: argparse.ArgumentParser, batch_sizes: str = "--batch-sizes",
              at_parse: bool = True) -> None:
    """The finetuning sweep, the paper's Table 10 unless overridden. `at_parse`: reject
    sizes below 1 while parsing; finetune-eval leaves that to its own check, which names
    every bad value in one message."""
    p.add_argument("--seeds", type=number_list(int), default=None, metavar="1,2,3",
                   help="finetuning seeds (default: the paper's five)")
    p.add_argument("--lrs", type=number_list(float), default=None, metavar="1e-5,2e-5",
                   help="finetuning learning rates (default: the paper's Table 10 sweep)")
    p.add_argument(batch_sizes, type=number_list(int, 1 if at_parse else None), default=None,
                   metavar="16,32", help="finetuning batch sizes (default: Table 10)")
    p.add_argument("--epochs", type=positive_int if at_parse else int, default=None,
                   help="finetuning epochs (default: Table 10)")


def add_mix(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mix", type=mixture, default=None, metavar="SOURCE=W,...",
                   help="mixture weights per source (import-corpus --name; build-corpus "
                        "documents are cc-news), e.g. wikipedia=2,cc-news=1 up-samples "
                        "Wikipedia 2x; fractional weights sample documents by hash; "
                        "unnamed sources weigh 1 (default: the corpus as it is)")
