"""`roberta results`: print the results table."""
from __future__ import annotations

import argparse
from pathlib import Path

from flows.cli.common import EXIT_OK, add_root

NAME = "results"
HELP = "print the results table"
DESCRIPTION = "Print RUN_DIR/results/results.parquet, newest rows last."


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_root(p)


def run(args: argparse.Namespace) -> int:
    from evaluation.results import paths, print_results

    if not Path(paths(args.root)["parquet"]).exists():
        raise FileNotFoundError(f"no results under {args.root}: run finetune-eval first")
    print_results(args.root)   # full width when stdout is not a terminal
    return EXIT_OK
