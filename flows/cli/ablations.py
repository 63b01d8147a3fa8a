"""`roberta ablations`: the paper's Section 4 comparisons at a chosen scale."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from flows.cli.common import (EXIT_OK, EXIT_PARTIAL, add_model_preset, add_root, add_sweep,
                              int_at_least, positive_int, runner_of)

NAME = "ablations"
HELP = "the paper's Section 4 comparisons at a chosen scale"
DESCRIPTION = ("Rerun Tables 1-3 and Section 4.4 (masking, input format/NSP, batch size, BPE) "
               "on RUN_DIR's corpus: one pretrain + finetune-eval per arm, tables with the "
               "paper's numbers under RUN_DIR/results/ablations/.")


def _tables(text: str) -> str:
    from evaluation.ablations import parse_tables

    try:
        parse_tables(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    a = parser.add_argument
    add_root(parser, "run root with corpus/documents and tokenizer/ (e.g. after `roberta "
                     "pipeline`); writes RUN_DIR/ablations/<arm>/ and RUN_DIR/results/ablations/")
    a("--tables", type=_tables, default="1,2,3,bpe",
      help="comparisons: 1 (static vs dynamic masking), 2 (input format / NSP), 3 (batch size "
           "at equal compute), bpe (char- vs byte-level BPE) (default: %(default)s)")
    add_model_preset(parser, "tiny", "model preset")
    a("--steps", type=positive_int, default=None, metavar="S",
      help="updates of the base arm, a multiple of 32 (Table 3 runs S/8 and S/32) "
           "(default: the preset's)")
    a("--batch-size", type=positive_int, default=None, metavar="B",
      help="sequences per update of the base arm (Table 3 adds 8B and 32B) "
           "(default: preset batch / 32, at least 8)")
    a("--micro-batch-size", type=positive_int, default=None, metavar="SEQS",
      help="sequences per forward/backward (default: gcd(B, 16))")
    a("--lr", type=float, default=None,
      help="peak lr of the base arm; Table 3 uses 7x and 10x (default: preset peak / 10)")
    a("--block-size", type=positive_int, default=128, metavar="T",
      help="tokens per block (the paper: 512) (default: %(default)s)")
    a("--static-masks", type=int_at_least(0), default=10, metavar="K",
      help="masks of Table 1's static arm (default: %(default)s)")
    a("--char-vocab", type=positive_int, default=None, metavar="V",
      help="character-level BPE vocabulary (default: 0.6 x the run's byte-level vocabulary, "
           "the paper's 30K/50K)")
    a("--valid-sequences", type=positive_int, default=256, metavar="N",
      help="held-out sequences behind each perplexity (default: %(default)s)")
    a("--valid-fraction", type=float, default=0.02,
      help="share of documents held out (default: %(default)s)")
    a("--tasks", default=None,
      help="finetune tasks (default: sst2,squad2 with synthetic data, else "
           "mnli,sst2,squad1,squad2,race)")
    a("--data-dir", default="synthetic", metavar="DIR",
      help="task data (GLUE TSV dirs, SQuAD/, RACE/), or 'synthetic' (default)")
    add_sweep(parser, batch_sizes="--finetune-batch-sizes")
    a("--limit", type=positive_int, default=None, metavar="N",
      help="at most N training examples per task (smoke runs)")
    a("--device", choices=["cpu", "cuda"], default=None, help="finetuning device")
    a("--runner", choices=["threads", "processes", "ray"], default="threads",
      help="how arms run: threads (one at a time with --workers 1) or ray (side by side on a "
           "cluster) (default: %(default)s)")
    a("--workers", type=positive_int, default=1, metavar="N",
      help="arms at once (default: %(default)s)")
    a("--address", dest="ray_address", default=None, metavar="RAY_ADDRESS",
      help="Ray cluster for the arms and pretraining; implies --runner ray")
    a("--train-workers", type=positive_int, default=1, metavar="N",
      help="Ray Train workers per arm (default: %(default)s)")
    a("--gpu", action="store_true", help="one GPU per Ray Train worker")
    a("--no-ray", dest="use_ray", action="store_false",
      help="pretrain in this process instead of Ray Train")
    a("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    from evaluation.ablations import arms_for, parse_tables
    from flows.ablations import ablations
    from flows.progress import count_files, watch_files
    from runroot import layout

    total = len(arms_for(parse_tables(args.tables)))
    arms_done = count_files(Path(args.root) / layout.ABLATIONS, f"*/{layout.ARM_DONE}")
    with watch_files("ablation arms", arms_done, total=total):
        out = ablations(
            root=args.root, tables=args.tables, config=args.config, steps=args.steps,
            batch_size=args.batch_size, micro_batch_size=args.micro_batch_size,
            lr=args.lr, block_size=args.block_size, static_masks=args.static_masks,
            char_vocab=args.char_vocab, valid_sequences=args.valid_sequences,
            valid_fraction=args.valid_fraction, tasks=args.tasks, data_dir=args.data_dir,
            seeds=args.seeds, lrs=args.lrs, finetune_batch_sizes=args.finetune_batch_sizes,
            epochs=args.epochs, limit=args.limit, device=args.device, runner=runner_of(args),
            workers=args.workers, ray_address=args.ray_address,
            train_workers=args.train_workers, gpu=args.gpu, address=args.ray_address,
            use_ray=args.use_ray, seed=args.seed)
    for name, files in out["tables"].items():
        print(Path(files["md"]).read_text())
        print(f"[{name}: {files['parquet']}, chart {files['png']}]\n")
    if out["skipped"]:
        print("already done, skipped: " + ", ".join(out["skipped"]))
    return _report_failures(out)


def _report_failures(out: dict) -> int:
    failed = out.get("failed") or {}
    for arm, error in failed.items():
        print(f"arm {arm} FAILED: {error}", file=sys.stderr)
    if failed:
        print(f"arms failed (fix the cause and rerun; finished arms are skipped): "
              f"{', '.join(failed)}", file=sys.stderr)
    missing = [a for a, r in out["arms"].items() if a not in failed and
               (r["ppl"] is None or set(out["tasks"]) - set(r["scores"] or {}))]
    if missing:
        print(f"arms with missing numbers (failed finetuning jobs; rerun to retry): "
              f"{', '.join(missing)}", file=sys.stderr)
    return EXIT_PARTIAL if failed or missing else EXIT_OK
