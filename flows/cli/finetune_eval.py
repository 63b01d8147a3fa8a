"""`roberta finetune-eval`: finetune and evaluate a checkpoint on GLUE, SQuAD, RACE."""
from __future__ import annotations

import argparse
import signal
from contextlib import contextmanager
from typing import Iterator

from flows.cli.common import (EXIT_OK, EXIT_PARTIAL, add_root, add_runner, add_sweep,
                              positive_int, runner_of)

NAME = "finetune-eval"
HELP = "finetune and evaluate on GLUE, SQuAD, RACE"
DESCRIPTION = ("Finetune a checkpoint on each task over the paper's hyperparameter sweep "
               "(Table 10), one job per (task, lr, batch, seed), and append the "
               "median-over-seeds results to RUN_DIR/results/. Ctrl-C (or SIGTERM) stops "
               "the running jobs within seconds; finished jobs stay cached, so the same "
               "command continues with the rest.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_root(p)
    p.add_argument("--data-dir", default=None, metavar="DIR",
                   help="task data: GLUE TSV dirs (MRPC/train.tsv, ...), SQuAD/*.json, RACE/; "
                        "or 'synthetic' for generated SST-2 and SQuAD 1.1 stand-ins under "
                        "RUN_DIR/eval-data, as `roberta pipeline` uses. Required, except with "
                        "--nightly against a Prefect server, which then reads the Prefect "
                        "Variable roberta_nightly_eval")
    p.add_argument("--tasks", default=None,
                   help="comma-separated tasks (cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte, "
                        "wnli, squad1, squad2, race), or glue / all (default: mrpc, or "
                        "sst2,squad1 with --data-dir synthetic)")
    p.add_argument("--checkpoint", default=None, metavar="DIR",
                   help="a pretrain checkpoint or any HF RoBERTa directory (default: the "
                        "newest pretrain checkpoint under RUN_DIR)")
    p.add_argument("--nightly", action="store_true",
                   help="evaluate the newest checkpoint without results on this data; do "
                        "nothing if none")
    add_sweep(p, at_parse=False)   # check_inputs names every bad value at once
    p.add_argument("--limit", type=int, default=None, metavar="N",
                   help="at most N training examples per task (smoke runs); dev sets are "
                        "still scored whole")
    p.add_argument("--dev-limit", type=positive_int, default=None, metavar="N",
                   help="score at most N examples of each dev set (recorded in the table)")
    p.add_argument("--device", choices=["cpu", "cuda"], default=None,
                   help="default: cuda when available")
    add_runner(p, default="threads")


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """SIGINT and SIGTERM stop the running jobs at their next update (evaluation/stopping.py)
    and end the command (exit 130). Jobs run on threads, which cannot be killed: without the
    stop request the command would wait for every running job to finish. During the flow run
    Prefect handles SIGTERM itself and, once it has recorded the crash, sends it again, to
    this handler."""
    from evaluation.stopping import STOP

    def on_signal(signum, frame):
        STOP.set()
        raise KeyboardInterrupt

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def run(args: argparse.Namespace) -> int:
    from flows.finetune_eval import check_inputs, finetune_eval
    from flows.progress import ProgressBoard

    workers = args.workers or 1
    # before Prefect starts: bad arguments and missing inputs fail in a second
    if args.data_dir is not None or not args.nightly:
        check_inputs(args.root, args.data_dir, args.tasks, checkpoint=args.checkpoint,
                     nightly=args.nightly, lrs=args.lrs, batch_sizes=args.batch_sizes,
                     epochs=args.epochs, limit=args.limit, workers=workers,
                     dev_limit=args.dev_limit)
    with stop_on_signals(), ProgressBoard():   # this run's jobs, and a row per running job
        state = finetune_eval(
            root=args.root, data_dir=args.data_dir, tasks=args.tasks,
            checkpoint=args.checkpoint, nightly=args.nightly, seeds=args.seeds,
            lrs=args.lrs, batch_sizes=args.batch_sizes, epochs=args.epochs,
            limit=args.limit, dev_limit=args.dev_limit, device=args.device,
            runner=runner_of(args), workers=workers, ray_address=args.ray_address,
            return_state=True)
    out = state.result()      # raises what the flow raised (a Failed nightly: exit 2)
    return report(args.root, out)


def report(root: str, out: dict) -> int:
    """Print the outcome of a run; its exit code."""
    if out["evaluated"] is None:
        print(out["summary"])
        return EXIT_OK
    from evaluation.results import print_results

    print_results(root)   # fitted to the terminal; full width when stdout is not one
    print(out["summary"])
    if out["rows"] and not out.get("appended"):
        print("no rows appended: these results are already in the table (cached jobs)")
    if out["failed_jobs"]:
        print(f"{out['failed_jobs']} job(s) failed: see the error column; rerun to retry them")
        return EXIT_PARTIAL
    return EXIT_OK
