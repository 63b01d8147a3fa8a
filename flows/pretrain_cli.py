"""`roberta pretrain`: arguments, and a progress bar that follows `metrics.jsonl`.

Kept apart from flows/pretrain.py so that building the CLI's parser imports neither Prefect
nor torch (`roberta --help` stays instant).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from flows.cli import EXIT_BAD_INPUT, EXIT_ERROR, EXIT_OK, positive_int


def _key_value(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    k, v = text.split("=", 1)
    try:
        return k, json.loads(v)
    except json.JSONDecodeError:
        return k, v


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from training.config import ModelConfig

    parser.add_argument("--root", default="./runs/default", metavar="RUN_DIR",
                        help="run root: reads RUN_DIR/shards and RUN_DIR/tokenizer, writes "
                             "RUN_DIR/pretrain/RUN (default: %(default)s)")
    parser.add_argument("--config", default="tiny", choices=ModelConfig.preset_names(),
                        help="model + optimizer preset (default: %(default)s)")
    parser.add_argument("--steps", type=positive_int, default=None, metavar="N",
                        help="optimizer updates, the LR schedule's length (default: preset)")
    parser.add_argument("--batch-size", type=positive_int, default=None, metavar="SEQS",
                        help="sequences per optimizer update, whatever the worker count "
                             "(default: preset; 8192 for base/large)")
    parser.add_argument("--micro-batch-size", type=positive_int, default=None, metavar="SEQS",
                        help="sequences per forward/backward on one worker (default: 16, or "
                             "fewer to fit a worker's share of the batch)")
    parser.add_argument("--workers", type=positive_int, default=1, metavar="N",
                        help="Ray Train workers (default: %(default)s)")
    parser.add_argument("--gpu", action="store_true", help="one GPU per worker (NCCL)")
    parser.add_argument("--address", default=None, metavar="RAY_ADDRESS",
                        help="attach to this Ray cluster (default: start a local Ray)")
    parser.add_argument("--run", default=None, metavar="NAME",
                        help="run name, under RUN_DIR/pretrain/ (default: the config name)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run from its last checkpoint")
    parser.add_argument("--checkpoint-every", type=int, default=None, metavar="N",
                        help="updates between checkpoints (default: 1000, or steps/10)")
    parser.add_argument("--keep-last", type=int, default=3, metavar="K",
                        help="checkpoints kept (default: %(default)s)")
    parser.add_argument("--valid-every", type=int, default=None, metavar="N",
                        help="updates between validations (default: as checkpoints)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--masking", choices=("dynamic", "static"), default="dynamic",
                        help="dynamic masks (RoBERTa) or the shards' static masks (BERT)")
    parser.add_argument("--model-set", action="append", type=_key_value, default=[],
                        metavar="KEY=VALUE", help="override a ModelConfig field (repeatable)")
    parser.add_argument("--optim-set", action="append", type=_key_value, default=[],
                        metavar="KEY=VALUE", help="override an OptimConfig field (repeatable)")
    parser.add_argument("--max-failures", type=int, default=2, metavar="N",
                        help="worker-group restarts from the last checkpoint (default: "
                             "%(default)s)")
    parser.add_argument("--compile", default="auto",
                        choices=("auto", "off", "default", "cudagraphs"),
                        help="torch.compile the step: cudagraphs = CUDA graphs + ATen dropout RNG "
                             "(fastest measured on a GPU); auto = cudagraphs on one GPU, default "
                             "on several, off on CPU (default: %(default)s)")
    parser.add_argument("--no-ray", dest="use_ray", action="store_false",
                        help="run the loop in this process (a bare GPU box, debugging)")


def last_step(path: Path) -> int:
    """Step of the last complete line of a metrics.jsonl, reading only its tail."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - 4096))
            lines = f.read().splitlines()
    except OSError:
        return 0
    for line in reversed(lines):
        try:
            return int(json.loads(line)["step"])
        except (ValueError, KeyError, TypeError):
            continue
    return 0


def run_from_cli(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from flows.pretrain import pretrain
    from flows.progress import watch_files
    from training.metrics_log import METRICS_FILE, read_metrics, summary_rows
    from training.pretrain_config import PretrainConfig, PretrainConfigError, resolve
    from training.ray_launcher import RunExistsError, refuse_existing_run

    console = Console()
    kwargs = dict(root=args.root, config=args.config, steps=args.steps,
                  batch_size=args.batch_size, micro_batch_size=args.micro_batch_size,
                  workers=args.workers, gpu=args.gpu, address=args.address, run=args.run,
                  resume=args.resume, checkpoint_every=args.checkpoint_every,
                  keep_last=args.keep_last, valid_every=args.valid_every, seed=args.seed,
                  masking=args.masking, model_overrides=dict(args.model_set),
                  optim_overrides=dict(args.optim_set), max_failures=args.max_failures,
                  use_ray=args.use_ray, compile=args.compile)
    try:
        cfg = PretrainConfig.for_run(args.root, args.config, steps=args.steps,
                              batch_size=args.batch_size, micro_batch_size=args.micro_batch_size,
                              run=args.run, model_overrides=dict(args.model_set),
                              optim_overrides=dict(args.optim_set))
        total = resolve(cfg, args.workers if args.use_ray else 1).steps
        refuse_existing_run(cfg.run_dir, args.resume)   # before the progress bar shows
    except (PretrainConfigError, FileNotFoundError, ValueError, RunExistsError) as exc:
        print(f"roberta pretrain: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    metrics_path = cfg.run_dir / METRICS_FILE
    try:
        with watch_files("optimizer updates", lambda: last_step(metrics_path), total=total):
            out = pretrain(**kwargs)
    except (RunExistsError, PretrainConfigError, FileNotFoundError) as exc:
        print(f"roberta pretrain: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as exc:  # training failed: the last good checkpoint stays
        print(f"roberta pretrain: training failed: {exc}", file=sys.stderr)
        print(f"resume from the last checkpoint with --resume --run {cfg.run}", file=sys.stderr)
        return EXIT_ERROR
    table = Table(title=f"pretrain {cfg.run}")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    summary = dict(out["summary"], metrics=read_metrics(cfg.run_dir))
    for row in summary_rows(summary):
        table.add_row(row["quantity"], row["value"])
    console.print(table)
    console.print(f"loss curve: {out['loss_png']}")
    return EXIT_OK
