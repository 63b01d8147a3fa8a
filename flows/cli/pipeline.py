"""`roberta pipeline`: all five stages under one run root, each skipped when already done."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from flows.cli.common import (EXIT_OK, EXIT_PARTIAL, add_model_preset, add_root, add_sweep,
                              int_at_least, positive_int, vocab_size)

SAMPLE_CRAWL = Path(__file__).resolve().parents[2] / "corpus" / "sample"

NAME = "pipeline"
HELP = "all five stages, each skipped when already done"
DESCRIPTION = ("build-corpus → train-tokenizer → shard-corpus → pretrain → finetune-eval "
               "under one run root; a rerun skips finished stages and resumes an interrupted "
               "pretraining run.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from runroot.shard_format import FORMATS

    add_root(p)
    p.add_argument("inputs", nargs="*", metavar="INPUT",
                   help="build-corpus inputs (default: the bundled sample crawl)")
    p.add_argument("--vocab-size", type=vocab_size, default=50265, help="BPE vocabulary size")
    p.add_argument("--format", default="full-sentences", choices=FORMATS,
                   help="shard-corpus input format (default: %(default)s)")
    p.add_argument("--block-size", type=int_at_least(2), default=512,
                   help="tokens per block, <s> included")
    add_model_preset(p, None, "pretrain preset (default: base; with --init-from the "
                              "checkpoint's shape, which a preset given must match)")
    p.add_argument("--init-from", default=None, metavar="DIR",
                   help="continue pretraining this Hugging Face RoBERTa checkpoint on the "
                        "inputs: adopts its tokenizer (train-tokenizer --existing DIR) and "
                        "starts from its weights (pretrain --init-from DIR)")
    p.add_argument("--steps", type=positive_int, default=None,
                   help="pretrain updates (default: preset)")
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
    add_sweep(p)


def run(args: argparse.Namespace) -> int:
    from corpus.inputs import resolve_inputs
    from flows.pipeline import check_init_from, pipeline
    from training.pretrain_config import PretrainConfig

    model = args.config or (None if args.init_from else "base")
    config = PretrainConfig.for_run(args.root, model, steps=args.steps,
                                    batch_size=args.batch_size, init_from=args.init_from)
    check_init_from(args.root, config, args.block_size)     # before Prefect starts
    inputs = args.inputs or [str(SAMPLE_CRAWL)]
    sources = resolve_inputs(inputs)   # a missing input: exit 2 now, not after Prefect starts
    input_ids = [s.input_id for s in sources]
    try:
        with watch_stages(args.root, input_ids, config):
            out = pipeline(
                inputs=inputs, root=args.root, vocab_size=args.vocab_size, format=args.format,
                block_size=args.block_size, pretrain_config=config,
                train_workers=args.train_workers, gpu=args.gpu, address=args.address,
                tasks=args.tasks, data_dir=args.data_dir, seeds=args.seeds, lrs=args.lrs,
                batch_sizes=args.batch_sizes, epochs=args.epochs)
    finally:   # an input that gave nothing is named even when a later stage fails for it
        inputs_code = print_build_corpus_inputs(args.root, input_ids)
    from rich.console import Console

    from evaluation.results import print_results

    console = Console(width=None if sys.stdout.isatty() else 160)
    print_results(args.root, console=console)
    if out["skipped"]:
        console.print(f"already done, skipped: {', '.join(out['skipped'])}")
    console.print("[bold]Where everything is[/]")
    for name, path in out["artifacts"].items():
        console.print(f"  {name:16s} {Path(path).resolve()}")
    return EXIT_PARTIAL if out["failed_jobs"] else inputs_code


def print_build_corpus_inputs(root: str, input_ids: list[str]) -> int:
    """build-corpus's line per input, from the manifests it wrote; EXIT_PARTIAL when an input
    gave no usable record."""
    from rich.console import Console

    from flows.cli.build_corpus import print_inputs
    from flows.fan_out import total_counts
    from runroot import layout

    manifests = [json.loads(p.read_text()) for p in
                 (Path(root) / layout.input_manifest(i) for i in input_ids) if p.is_file()]
    if not manifests:
        return EXIT_OK
    return print_inputs(Console(), {**total_counts(manifests), "failed_inputs": []},
                        unit="pages")


def watch_stages(root: str, input_ids: list[str], config):
    """The progress of all five stages on one board: build-corpus's inputs (and the records
    of each being read), a row per stage from its start, pretrain's updates with loss,
    tokens/s and ETA (its metrics.jsonl), finished finetuning jobs, and whatever a stage
    reports through StageProgress (train-tokenizer, shard-corpus, ...)."""
    from flows.progress import JobsPoller, MetricsPoller, StagesPoller, watch_inputs
    from runroot import layout

    steps = config.steps or config.optim_config().total_steps
    done = {stage: Path(root) / marker for stage, marker in layout.DONE.items()}
    trained = config.run_dir / layout.LOSS_PLOT      # written when a pretrain run ends
    stages = StagesPoller([
        (("stage", "train-tokenizer"), "train-tokenizer", done["build-corpus"],
         done["train-tokenizer"]),
        (("stage", "shard-corpus"), "shard-corpus", done["train-tokenizer"],
         done["shard-corpus"]),
        ("pretrain", "pretrain", done["shard-corpus"], trained),
        ("jobs", "finetune-eval jobs", trained, None)])
    return watch_inputs("build-corpus inputs", root, input_ids, "pages", stages,
                        MetricsPoller(config.run_dir / layout.METRICS, steps),
                        JobsPoller(root))
