"""The packed-token shards: the contract between shard-corpus (the writer, corpus/sharding.py)
and pretraining (the reader, training/shard_reader.py). Defined once, here.

The paper's input formats (Section 4.2): FULL-SENTENCES (its choice, the default) and
DOC-SENTENCES pack contiguous sentences into one segment; SEGMENT-PAIR and SENTENCE-PAIR
pack two segments for BERT's next-sentence prediction.

Parquet schema of a shard (T = block_size; ids uint16 when the vocabulary fits, else uint32):
    block_index     int64                   global, dense within the split, from 0
    input_ids       fixed_size_list<T>      `<s>` ... then `<pad>`
    length          int32                   tokens before padding
    segment_ids     fixed_size_list<uint8>  pair formats only
    nsp_label       int8                    pair formats only (0 IsNext, 1 NotNext)
    mask_positions  list<list<uint16>>      static masks only: K lists of positions
    mask_tokens     list<list<ids>>         static masks only: the ids shown there
"""
from __future__ import annotations

FORMATS = ("full-sentences", "doc-sentences", "segment-pair", "sentence-pair")
PAIR_FORMATS = ("segment-pair", "sentence-pair")
DEFAULT_FORMAT = "full-sentences"
SPLITS = ("train", "valid")
MANIFEST_VERSION = 1

NSP_IS_NEXT, NSP_NOT_NEXT = 0, 1


def is_pair(fmt: str | None) -> bool:
    """Whether blocks of `fmt` hold two segments (and an NSP label)."""
    return fmt in PAIR_FORMATS


def required_columns(pair: bool, static: bool) -> list[str]:
    """The columns a shard of this kind must have."""
    return (["block_index", "length", "input_ids"]
            + (["segment_ids", "nsp_label"] if pair else [])
            + (["mask_positions", "mask_tokens"] if static else []))


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: choose one of {', '.join(FORMATS)}")
    return fmt
