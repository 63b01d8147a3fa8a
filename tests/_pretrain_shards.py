"""Small real token shards for the pretraining tests: the bundled sample crawl through the
real corpus pipeline (extract + dedup), a small byte-level BPE, and packed blocks.

`sample_shards_root(base)` is idempotent (every stage skips finished work), so several test
modules can share one copy under the session's base temp directory."""
from __future__ import annotations

from pathlib import Path

SAMPLE_WARC = Path(__file__).resolve().parent.parent / "corpus" / "sample" / "sample.warc.gz"
VOCAB_SIZE = 1000
BLOCK_SIZE = 64


def sample_shards_root(base: Path, block_size: int = BLOCK_SIZE, static_masks: int = 0,
                       name: str = "pretrain-sample") -> Path:
    from corpus import bpe
    from corpus.dedup import deduplicate
    from corpus.warc_file import process_warc
    from corpus.sharding import shard_corpus

    root = Path(base) / name
    if (root / "shards" / "manifest.json").exists():
        return root
    root.mkdir(parents=True, exist_ok=True)
    process_warc(SAMPLE_WARC, root)
    deduplicate(root)
    bpe.train_tokenizer(root, vocab_size=VOCAB_SIZE)
    shard_corpus(root, fmt="full-sentences", block_size=block_size, valid_fraction=0.1,
                 static_masks=static_masks, workers=1, rows_per_group=64)
    return root
