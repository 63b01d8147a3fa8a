"""`roberta finetune-eval`: finetune and evaluate a checkpoint on GLUE, SQuAD, RACE."""
from __future__ import annotations

import argparse
from pathlib import Path

from flows.cli.common import EXIT_OK, EXIT_PARTIAL, add_root, add_runner, add_sweep, runner_of

NAME = "finetune-eval"
HELP = "finetune and evaluate on GLUE, SQuAD, RACE"
DESCRIPTION = ("Finetune a checkpoint on each task over the paper's hyperparameter sweep "
               "(Table 10), one job per (task, lr, batch, seed), and append the "
               "median-over-seeds results to RUN_DIR/results/.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_root(p)
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
    add_sweep(p, at_parse=False)   # check_inputs names every bad value at once
    p.add_argument("--limit", type=int, default=None, metavar="N",
                   help="at most N training examples per task (smoke runs)")
    p.add_argument("--device", choices=["cpu", "cuda"], default=None,
                   help="default: cuda when available")
    add_runner(p, default="threads")


def run(args: argparse.Namespace) -> int:
    from flows.finetune_eval import check_inputs, finetune_eval
    from flows.progress import count_files, watch_files
    from runroot import layout

    workers = args.workers or 1
    # before Prefect starts: bad arguments and missing inputs fail in a second
    check_inputs(args.root, args.data_dir, args.tasks, checkpoint=args.checkpoint,
                 nightly=args.nightly, lrs=args.lrs, batch_sizes=args.batch_sizes,
                 epochs=args.epochs, limit=args.limit, workers=workers)
    jobs_done = count_files(Path(args.root) / layout.JOBS, "*/*.json")
    with watch_files("finetuning jobs", jobs_done, total=None):
        out = finetune_eval(
            root=args.root, data_dir=args.data_dir, tasks=args.tasks,
            checkpoint=args.checkpoint, nightly=args.nightly, seeds=args.seeds,
            lrs=args.lrs, batch_sizes=args.batch_sizes, epochs=args.epochs,
            limit=args.limit, device=args.device, runner=runner_of(args),
            workers=workers, ray_address=args.ray_address)
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
