"""`roberta pretrain`: arguments, and a progress bar that follows `metrics.jsonl`."""
from __future__ import annotations

import argparse
import json
import typing
from pathlib import Path

from flows.cli.common import (EXIT_OK, RunFailed, add_model_preset, add_root, one_line,
                              positive_int)
from runroot import layout

NAME = "pretrain"
HELP = "packed blocks → RoBERTa checkpoints (Ray Train)"
DESCRIPTION = ("Pretrain a RoBERTa encoder on RUN_DIR/shards with the paper's recipe (dynamic "
               "masking, no NSP, AdamW β2=0.98, linear warm-up and decay, large batches by "
               "accumulation) on Ray Train; checkpoints in the Hugging Face layout under "
               "RUN_DIR/pretrain/RUN/.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    a = parser.add_argument
    add_root(parser, "run root: reads RUN_DIR/shards and RUN_DIR/tokenizer, writes "
                     "RUN_DIR/pretrain/RUN")
    add_model_preset(parser, None, "model + optimizer preset (default: tiny; with "
                                   "--init-from the checkpoint's shape, which a preset given "
                                   "must match)")
    a("--steps", type=positive_int, default=None, metavar="N",
      help="optimizer updates, the LR schedule's length (default: preset)")
    a("--batch-size", type=positive_int, default=None, metavar="SEQS",
      help="sequences per optimizer update, whatever the worker count (default: preset; 8192 "
           "for base/large)")
    a("--micro-batch-size", type=positive_int, default=None, metavar="SEQS",
      help="sequences per forward/backward on one worker (default: 16, or fewer to fit a "
           "worker's share of the batch)")
    a("--workers", type=positive_int, default=1, metavar="N",
      help="Ray Train workers (default: %(default)s)")
    a("--gpu", action="store_true", help="one GPU per worker (NCCL)")
    a("--address", default=None, metavar="RAY_ADDRESS",
      help="attach to this Ray cluster (default: start a local Ray)")
    a("--run", default=None, metavar="NAME",
      help="run name, under RUN_DIR/pretrain/ (default: the config name)")
    a("--resume", action="store_true", help="continue the run from its last checkpoint")
    a("--init-from", default=None, metavar="DIR",
      help="start from this Hugging Face RoBERTa checkpoint (ours, or one you bring: "
           "config.json + model.safetensors or pytorch_model.bin, and its tokenizer files): "
           "its weights and shape, with a fresh optimizer, schedule and data position and the "
           "continued-pretraining recipe (README); the shards must use its tokenizer "
           "(train-tokenizer --existing DIR). Default run name: from-<DIR's name>")
    a("--checkpoint-every", type=int, default=None, metavar="N",
      help="updates between checkpoints (default: 1000, or steps/10)")
    a("--keep-last", type=int, default=3, metavar="K",
      help="checkpoints kept (default: %(default)s)")
    a("--valid-every", type=int, default=None, metavar="N",
      help="updates between validations (default: as checkpoints)")
    a("--seed", type=int, default=0)
    a("--masking", choices=("dynamic", "static"), default="dynamic",
      help="dynamic masks (RoBERTa) or the shards' static masks (BERT)")
    a("--model-set", action="append", type=config_override("ModelConfig"), default=[],
      metavar="KEY=VALUE", help="override a ModelConfig field, e.g. num_layers=4 (repeatable)")
    a("--optim-set", action="append", type=config_override("OptimConfig"), default=[],
      metavar="KEY=VALUE", help="override an OptimConfig field, e.g. peak_lr=5e-4 or "
                                "betas=0.9,0.98 (repeatable)")
    a("--max-failures", type=int, default=2, metavar="N",
      help="worker-group restarts from the last checkpoint (default: %(default)s)")
    a("--compile", default="auto", choices=("auto", "off", "default", "cudagraphs"),
      help="torch.compile the step: cudagraphs = CUDA graphs + ATen dropout RNG (fastest "
           "measured on a GPU); auto = cudagraphs on one GPU, default on several, off on CPU "
           "(default: %(default)s)")
    a("--no-ray", dest="use_ray", action="store_false",
      help="run the loop in this process (a bare GPU box, debugging)")


_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def _parse_as(kind, text: str):
    """`text` as a value of the field type `kind` (int, float, bool, str, tuple[float, ...],
    X | None); ValueError saying what was expected."""
    args = typing.get_args(kind)
    if type(None) in args:                                  # X | None
        if text.lower() in ("none", "null"):
            return None
        return _parse_as(next(a for a in args if a is not type(None)), text)
    if kind is bool:
        if text.lower() not in _TRUE + _FALSE:
            raise ValueError("expected true or false")
        return text.lower() in _TRUE
    if typing.get_origin(kind) is tuple:                    # betas=0.9,0.98 or [0.9, 0.98]
        return tuple(_parse_as(args[0], x.strip()) for x in text.strip("[]() ").split(","))
    if kind in (int, float, str):
        try:
            return kind(text)
        except ValueError:
            raise ValueError(f"expected {'an integer' if kind is int else 'a number'}") from None
    raise ValueError(f"cannot be set from the command line ({kind})")


def config_override(class_name: str):
    """An argparse type: KEY=VALUE for a field of training.config's `class_name`, the value
    parsed with the field's type. Ranges (layers >= 1, learning rates > 0, ...) are the
    config's own checks, run with the preset before anything starts (`pretrain_config`)."""
    def parse(text: str) -> tuple[str, object]:
        from training import config

        cls = getattr(config, class_name)
        if "=" not in text:
            raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
        key, value = (part.strip() for part in text.split("=", 1))
        hints = typing.get_type_hints(cls)
        if key not in config.field_names(cls):
            raise argparse.ArgumentTypeError(
                f"unknown {class_name} field {key!r}; fields are {sorted(config.field_names(cls))}")
        try:
            return key, _parse_as(hints[key], value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{key}={value!r}: {exc}") from None
    return parse


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


def pretrain_config(args: argparse.Namespace):
    """The run's whole `PretrainConfig`, from every argument that shapes it. The presets with
    their overrides are checked first (ValueError naming the field: exit 2), before the shards
    are read; `resolve` checks them again against the shards."""
    from training.config import ModelConfig
    from training.pretrain_config import PretrainConfig

    config = PretrainConfig.for_run(
        args.root, args.config, run=args.run, steps=args.steps, batch_size=args.batch_size,
        micro_batch_size=args.micro_batch_size, checkpoint_every=args.checkpoint_every,
        valid_every=args.valid_every, keep_last=args.keep_last, seed=args.seed,
        masking=args.masking, model_overrides=dict(args.model_set),
        optim_overrides=dict(args.optim_set), compile=args.compile, init_from=args.init_from)
    if config.model is not None:   # with --init-from alone the shape is the checkpoint's
        ModelConfig.named(config.model, **config.model_overrides)
    config.optim_config()
    return config


def run(args: argparse.Namespace) -> int:
    from flows.pretrain import check_inputs, pretrain
    from flows.progress import MetricsPoller, ProgressBoard
    from training.pretrain_config import PretrainConfigError
    from training.run_checkpoints import RunExistsError

    config = pretrain_config(args)
    # Every check, before Prefect starts and before the progress bar shows.
    total = check_inputs(config, args.workers, args.use_ray, args.resume).steps
    metrics_path = config.run_dir / layout.METRICS
    try:
        with ProgressBoard(MetricsPoller(metrics_path, total, "optimizer updates")):
            out = pretrain(config=config, workers=args.workers, gpu=args.gpu,
                           address=args.address, resume=args.resume,
                           max_failures=args.max_failures, use_ray=args.use_ray)
    except (RunExistsError, PretrainConfigError, FileNotFoundError):
        raise
    except Exception as exc:  # training failed: the last good checkpoint stays
        from training.run_checkpoints import has_run

        # Prefect's server not starting, say, fails before any checkpoint: then a resume
        # would find nothing, and the same command is what to run again.
        again = (f"resume from the last checkpoint with --resume --run {config.run}"
                 if has_run(config.run_dir) else "no checkpoint was written: fix the cause "
                 "and run the same command again")
        raise RunFailed(f"training failed: {one_line(str(exc))} ({again})") from exc
    print_summary(config.run, config.run_dir, out)
    return EXIT_OK


def print_summary(run: str, run_dir: Path, out: dict) -> None:
    """The run's summary in 80 columns: long values (paths) wrap instead of being cut."""
    from rich.console import Console
    from rich.table import Table

    from training.metrics_log import read_metrics, summary_rows

    table = Table(title=f"pretrain {run}")
    table.add_column("quantity", no_wrap=True)
    table.add_column("value", justify="right", overflow="fold")
    summary = dict(out["summary"], metrics=read_metrics(run_dir))
    for row in summary_rows(summary):
        table.add_row(row["quantity"], row["value"])
    console = Console()
    console.print(table)
    console.print(f"loss curve: {out['loss_png']}", soft_wrap=True)
