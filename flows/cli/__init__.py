"""`roberta`: one subcommand per flow, each taking `--root RUN_DIR`.

Each subcommand is a module of this package with NAME, HELP, DESCRIPTION,
`add_arguments(parser)` and `run(args)`; `flows/cli/common.py` holds what they share: the
exit codes, argument types, option groups, and `run_command`, which turns exceptions into
exit codes the same way for all of them. Exit codes: 0 the run completed (damaged inputs are
counted in its reports, not fatal); 2 bad arguments or inputs (missing path, unreachable
listing); 3 the run finished but some inputs could not be processed at all, or gave no usable
record (rerun to retry them); 1 the run failed; 130 interrupted.

Building the parser imports neither Prefect nor torch (`roberta --help` stays instant): a
subcommand imports its flow inside `run`.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from flows.cli import (ablations, build_corpus, finetune_eval, import_corpus, pipeline, pretrain,
                       results, shard_corpus, train_tokenizer)
from flows.cli.common import EXIT_BAD_INPUT, run_command

COMMANDS = {m.NAME: m for m in (build_corpus, import_corpus, train_tokenizer, shard_corpus,
                                pretrain, ablations, finetune_eval, pipeline, results)}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="roberta", description="RoBERTa pretraining pipeline: every subcommand is a "
        "Prefect flow; with no Prefect server configured it runs in ephemeral mode.")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show Prefect's flow and task logs on the console, and the "
                             "traceback of a failure")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in COMMANDS.items():
        command.add_arguments(sub.add_parser(name, help=command.HELP,
                                             description=command.DESCRIPTION))
    return parser


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
    # Prefect's 20 s for its ephemeral server to start is too short on a busy machine (about
    # 70 s measured on 2 loaded cores): the run would fail with only "Timed out ...".
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")


def prefect_home_problem() -> str | None:
    """Create PREFECT_HOME, parents too, before Prefect is imported; or say why it cannot be.
    Prefect's own mkdir has no parents=True and only warns; its ephemeral server then fails to
    create prefect.db there and the run ends, a minute later, in a bare "Timed out while
    attempting to connect to ephemeral Prefect API server"."""
    home = os.environ.get("PREFECT_HOME")
    if not home:
        return None     # ~/.prefect: Prefect creates it
    try:
        Path(home).expanduser().mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return (f"PREFECT_HOME={home} cannot be created ({exc.strerror or exc}): set "
                "PREFECT_HOME to a writable folder")
    return None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _quiet_prefect_console(args.verbose)
    problem = prefect_home_problem()
    if problem:
        print(f"roberta {args.command}: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return run_command(COMMANDS[args.command], args)


__all__ = ["COMMANDS", "build_parser", "main"]
