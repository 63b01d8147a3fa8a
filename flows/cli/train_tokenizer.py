"""`roberta train-tokenizer`: the corpus → RoBERTa's byte-level BPE."""
from __future__ import annotations

import argparse

from flows.cli.common import (EXIT_OK, add_mix, add_root, int_at_least, vocab_size,
                              with_progress_bars)

NAME = "train-tokenizer"
HELP = "corpus → 50K byte-level BPE"
DESCRIPTION = ("Train RoBERTa's byte-level BPE on RUN_DIR/corpus/documents and write "
               "tokenizer.json, vocab.json and merges.txt to RUN_DIR/tokenizer/.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_root(p)
    p.add_argument("--vocab-size", type=vocab_size, default=50265,
                   help="vocabulary size, special tokens included (default: %(default)s)")
    p.add_argument("--sample-fraction", type=float, default=1.0,
                   help="train on this deterministic fraction of documents (default: all)")
    p.add_argument("--min-frequency", type=int_at_least(0), default=2,
                   help="minimum pair frequency for a merge (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the document sample")
    p.add_argument("--existing", metavar="DIR", default=None,
                   help="reuse this tokenizer directory (tokenizer.json, or vocab.json + "
                        "merges.txt such as GPT-2's) instead of training")
    add_mix(p)


def run(args: argparse.Namespace) -> int:
    from flows.train_tokenizer import train_tokenizer_flow
    from runroot import layout, storage

    info = with_progress_bars(
        train_tokenizer_flow, root=args.root, vocab_size=args.vocab_size,
        sample_fraction=args.sample_fraction, min_frequency=args.min_frequency, seed=args.seed,
        existing=args.existing, mix=args.mix)
    print(f"tokenizer: {info['vocab_size']:,} ids (<mask>={info['mask_id']}) → "
          f"{storage.under(args.root, layout.TOKENIZER)}")
    return EXIT_OK
