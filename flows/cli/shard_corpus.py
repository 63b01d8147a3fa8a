"""`roberta shard-corpus`: documents → packed token blocks."""
from __future__ import annotations

import argparse

from flows.cli.common import (EXIT_OK, add_mix, add_root, int_at_least, positive_int,
                              with_progress_bars)

NAME = "shard-corpus"
HELP = "documents → packed token blocks"
DESCRIPTION = ("Encode RUN_DIR/corpus/documents with RUN_DIR/tokenizer and pack blocks in one "
               "of the paper's input formats under RUN_DIR/shards/.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from runroot.shard_format import FORMATS

    add_root(p)
    p.add_argument("--format", default="full-sentences", choices=FORMATS,
                   help="the paper's input format, Section 4.2 (default: %(default)s)")
    p.add_argument("--block-size", type=int_at_least(2), default=512,
                   help="tokens per block, <s> included (default: %(default)s)")
    p.add_argument("--valid-fraction", type=float, default=0.01,
                   help="share of documents held out for validation (default: %(default)s)")
    p.add_argument("--static-masks", type=int_at_least(0), default=0, metavar="K",
                   help="store K fixed masks per block, as the original BERT (default: 0, "
                        "dynamic masking at training time)")
    p.add_argument("--seed", type=int, default=0, help="seed for NSP negatives and static masks")
    p.add_argument("--workers", type=positive_int, default=None, metavar="N",
                   help="encoding processes (default: one per CPU core)")
    add_mix(p)


def run(args: argparse.Namespace) -> int:
    from flows.shard_corpus import shard_corpus_flow
    from runroot import layout, storage

    manifest = with_progress_bars(
        shard_corpus_flow, root=args.root, format=args.format, block_size=args.block_size,
        valid_fraction=args.valid_fraction, static_masks=args.static_masks, seed=args.seed,
        workers=args.workers, mix=args.mix)
    for split, s in manifest["splits"].items():
        print(f"{split}: {s['blocks']:,} blocks, {s['tokens']:,} tokens, "
              f"{s['documents']:,} documents")
    if manifest.get("tokens_by_source"):
        print("content tokens by source: " + ", ".join(
            f"{k} {v:,}" for k, v in manifest["tokens_by_source"].items()))
    print(f"shards → {storage.under(args.root, layout.SHARDS)}")
    return EXIT_OK
