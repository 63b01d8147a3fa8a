"""The stable per-document hash behind every sample and split decision: which documents the
tokenizer trains on, which go to the validation split, how many copies a mixture weight
gives. A document's number depends only on its id and a salt, never on the run, the worker
count or the order documents arrive in, so these decisions are the same on every rerun.
"""
from __future__ import annotations

import hashlib


def unit_hash(key: str, salt: str) -> float:
    """A stable number in [0, 1) for `key`: the basis of every sample/split decision."""
    h = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8,
                        person=salt.encode()[:16].ljust(16, b"\0")).digest()
    return int.from_bytes(h, "big") / 2.0**64
