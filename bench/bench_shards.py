"""Throughput of train-tokenizer and shard-corpus, against plain `Tokenizer.encode_batch`.

    python -m bench.bench_shards [--synthetic-mib 200] [--out bench/out/shards.json]

Corpora: the real-text test corpus (Python's documentation topics) and a synthetic corpus of
at least --synthetic-mib MiB made by reshuffling its sentences into new documents. For each:
BPE training MiB/s, plain `encode_batch` MiB/s (ids materialized, as any consumer must), and
shard-corpus (FULL-SENTENCES: read Parquet, split sentences, encode, pack, write) MiB/s, both
with the same thread count, and their ratio (the issue asks >= 0.8). Prints and writes JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from corpus import bpe
from corpus.sentences import split_sentences
from corpus.sharding import shard_corpus
from tests._shards_corpus import english_documents, write_corpus


def synthetic_texts(target_mib: float, seed: int = 0) -> list[str]:
    sents = [s.strip() for d in english_documents() for s in split_sentences(d) if s.strip()]
    rng = np.random.default_rng(seed)
    out, size = [], 0
    while size < target_mib * 2**20:
        k = int(rng.integers(10, 60))
        doc = " ".join(sents[i] for i in rng.integers(0, len(sents), size=k))
        out.append(doc)
        size += len(doc.encode())
    return out


def run(name: str, texts: list[str], vocab_size: int, workdir: Path, parts: int,
        repeats: int = 3, workers: int = 1) -> dict:
    root = workdir / name
    write_corpus(root, texts, n_parts=parts)
    mib = sum(len(t.encode()) for t in texts) / 2**20
    t0 = time.perf_counter()
    bpe.train_tokenizer(root, vocab_size=vocab_size)
    train_s = time.perf_counter() - t0
    tok = bpe.load_tokenizer(root)
    tok.encode_special_tokens = True

    files = sorted((root / "corpus" / "documents").glob("part-*.parquet"))

    def plain() -> int:  # the baseline reads the same Parquet parts
        tok = bpe.load_tokenizer(root)  # fresh, like shard-corpus: no warm BPE cache
        tok.encode_special_tokens = True
        n = 0
        for f in files:
            for rb in pq.ParquetFile(f).iter_batches(batch_size=1000, columns=["text"]):
                for e in tok.encode_batch(rb.column(0).to_pylist(), add_special_tokens=False):
                    n += len(e.ids)
        return n

    def shard() -> dict:
        shutil.rmtree(root / "shards", ignore_errors=True)
        return shard_corpus(root, block_size=512, valid_fraction=0.01, workers=workers)

    # Alternate the two and keep each one's best time: the machine may be shared.
    plain_s = shard_s = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        n_tokens = plain()
        plain_s = min(plain_s, time.perf_counter() - t0)
        t0 = time.perf_counter()
        m = shard()
        shard_s = min(shard_s, time.perf_counter() - t0)
    cores = os.cpu_count() or 1
    res = {"corpus": name, "mib": round(mib, 2), "documents": len(texts), "cores": cores,
           "vocab_size": vocab_size, "tokens": n_tokens, "shard_workers": workers,
           "bpe_train_mib_s": round(mib / train_s, 2),
           "plain_encode_batch_mib_s": round(mib / plain_s, 2),
           "shard_corpus_mib_s": round(mib / shard_s, 2),
           "shard_corpus_mib_s_per_core": round(mib / shard_s / cores, 2),
           "ratio_shard_vs_plain": round(plain_s / shard_s, 3),
           "blocks": m["splits"]["train"]["blocks"] + m["splits"]["valid"]["blocks"]}
    print(json.dumps(res))
    shutil.rmtree(root)
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--synthetic-mib", type=float, default=200)
    ap.add_argument("--vocab-size", type=int, default=8000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default="bench/out/shards.json")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        results = [run("sample", english_documents(), a.vocab_size, Path(d), 1, a.repeats)]
        if a.synthetic_mib > 0:
            results.append(run(f"synthetic-{a.synthetic_mib:g}MiB", synthetic_texts(a.synthetic_mib),
                               a.vocab_size, Path(d), max(1, int(a.synthetic_mib // 25)),
                               a.repeats))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
