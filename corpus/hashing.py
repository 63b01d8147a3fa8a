"""Identities and fingerprints of a document: doc_id, content hash, MinHash signature.

- `doc_id`: blake2b of the WARC record id, URL and crawl date, so the same record gets the
  same id on every run and machine (Python's `hash()` is salted per process).
- `content_hash`: blake2b of the normalised text (lowercase, digits folded to 0,
  punctuation dropped, whitespace collapsed, as cc_net's normalize_for_dedup): exact
  duplicates up to formatting.
- MinHash signature with datasketch over word 5-gram shingles of the normalised text, 128
  permutations. One permutation table is built per `MinHasher` and shared by every
  signature (`permutations=`), because building it is what makes `MinHash()` slow;
  `update_batch` then hashes all shingles in one numpy pass. Signatures are stored as
  uint32 (datasketch 2.x's `affine32` scheme), 512 bytes per document.
"""
from __future__ import annotations

import hashlib
import re
import unicodedata

import numpy as np
from datasketch import MinHash

_PUNCT = re.compile(r"[^\w\s]|_", re.UNICODE)
_DIGIT = re.compile(r"\d")
_SPACE = re.compile(r"\s+")


def doc_id(record_id: str, url: str, crawl_date: str) -> str:
    return hashlib.blake2b(f"{record_id}\n{url}\n{crawl_date}".encode(), digest_size=8).hexdigest()


def normalize_text(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    text = _DIGIT.sub("0", _PUNCT.sub(" ", text))
    return _SPACE.sub(" ", text).strip()


def content_hash(text: str) -> str:
    return hashlib.blake2b(normalize_text(text).encode(), digest_size=16).hexdigest()


def shingles(normalized: str, n: int = 5) -> set[bytes]:
    """Word n-grams; a text shorter than n words is one shingle."""
    words = normalized.split()
    if len(words) <= n:
        return {" ".join(words).encode()}
    return {" ".join(words[i:i + n]).encode() for i in range(len(words) - n + 1)}


class MinHasher:
    def __init__(self, num_perm: int = 128, seed: int = 1, n: int = 5):
        self.num_perm, self.seed, self.n = num_perm, seed, n
        # datasketch 2.x's default scheme, named explicitly: signatures of different schemes
        # are not comparable, and datasketch requires it when permutations are passed in.
        self.scheme = "affine32"
        self._template = MinHash(num_perm=num_perm, seed=seed, scheme=self.scheme)

    def signature(self, text: str) -> np.ndarray:
        m = MinHash(num_perm=self.num_perm, seed=self.seed, permutations=self._template.permutations,
                    scheme=self.scheme)
        m.update_batch(shingles(normalize_text(text), self.n))
        return m.hashvalues.astype(np.uint32)

    def minhash(self, signature: np.ndarray) -> MinHash:
        """Back to a datasketch MinHash (e.g. for MinHashLSH or `jaccard`)."""
        return MinHash(num_perm=self.num_perm, seed=self.seed, hashvalues=signature,
                       permutations=self._template.permutations, scheme=self.scheme)
