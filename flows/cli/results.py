"""`roberta results`: print the results table, or the trend over pretraining steps."""
from __future__ import annotations

import argparse
from pathlib import Path

from flows.cli.common import EXIT_OK, add_root

NAME = "results"
HELP = "print the results table (--trend: score against pretraining step)"
DESCRIPTION = ("Print RUN_DIR/results/results.parquet, newest rows last, fitted to the "
               "terminal (results.md beside it has every column). --trend prints each task's "
               "score against the pretraining step of the checkpoints evaluated so far "
               "(the plot: RUN_DIR/results/trend.png).")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_root(p)
    p.add_argument("--trend", action="store_true",
                   help="per task, the score of each evaluated pretraining checkpoint against "
                        "its step, and the change since the previous one")


def run(args: argparse.Namespace) -> int:
    from evaluation.results import paths, print_results, read_results

    if not Path(paths(args.root)["parquet"]).exists():
        raise FileNotFoundError(f"no results under {args.root}: run finetune-eval first")
    if not args.trend:
        print_results(args.root)   # full width when stdout is not a terminal
        return EXIT_OK
    from rich.console import Console

    from evaluation.trend import render_trend, trend_rows

    table = read_results(args.root)
    if not trend_rows(table):
        print("no pretraining checkpoint has results yet (rows of other models have no step)")
        return EXIT_OK
    Console().print(render_trend(table))
    print(f"plot: {paths(args.root)['trend']}")
    return EXIT_OK
