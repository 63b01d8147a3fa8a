"""Near-duplicate clustering at scale: 1,000,000 MinHash signatures with planted clusters,
on one core, against the 10 min / 4 GiB budget; recall and precision on the planted clusters.

    python -m bench.bench_dedup_scale [--docs 1000000] [--datasketch-sample 50000]

Signatures are synthetic but distributed like real ones: a near copy of a document with
Jaccard J agrees with it at each of the 128 positions with probability J (the MinHash
property). Planted: 10% of documents are 1-4 near copies (J in [0.85, 1.0]) of a base
document; the rest are unique. Clustering is corpus.dedup.near_duplicate_pairs (LSH banding
with datasketch's optimal (b, r) for 0.8, verified) + connected_components. For comparison,
datasketch.MinHashLSH (insert + query) is timed on a sample and extrapolated linearly.
Writes bench/out/dedup_scale.json.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "out"


def planted(n: int, num_perm: int, seed: int = 0):
    """(signatures, truth) where truth[i] is the planted cluster id (its base document)."""
    rng = np.random.default_rng(seed)
    sig = rng.integers(0, 2**32, size=(n, num_perm), dtype=np.uint32)
    truth = np.arange(n)
    n_copies = n // 10
    bases = rng.choice(n, size=n_copies // 2, replace=False)
    copies = np.setdiff1d(np.arange(n), bases)
    copies = rng.permutation(copies)[:n_copies]
    owner = rng.choice(bases, size=n_copies)  # 1-4 copies per base on average 2
    jac = rng.uniform(0.85, 1.0, size=n_copies)
    for s in range(0, n_copies, 100_000):
        c, o, j = copies[s:s + 100_000], owner[s:s + 100_000], jac[s:s + 100_000]
        same = rng.random((len(c), num_perm)) < j[:, None]
        sig[c] = np.where(same, sig[o], sig[c])
        truth[c] = o
    return sig, truth


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=1_000_000)
    ap.add_argument("--num-perm", type=int, default=128)
    ap.add_argument("--threshold", type=float, default=0.8)
    ap.add_argument("--datasketch-sample", type=int, default=50_000)
    a = ap.parse_args()
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[-1]})

    from corpus.dedup import connected_components, lsh_params, near_duplicate_pairs

    t0 = time.perf_counter()
    sig, truth = planted(a.docs, a.num_perm)
    t_gen = time.perf_counter() - t0
    rss_after_gen = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20

    bands, rows = lsh_params(a.threshold, a.num_perm)
    t0 = time.perf_counter()
    pa_, pb_ = near_duplicate_pairs(sig, a.threshold, bands, rows)
    t_lsh = time.perf_counter() - t0
    labels = connected_components(a.docs, pa_, pb_)
    t_cluster = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20

    # Pairwise-free scoring: a document is "found" when it shares a label with its base;
    # a removal is correct when its representative is in the same planted cluster.
    planted_dup = truth != np.arange(a.docs)
    recall = float((labels[planted_dup] == labels[truth[planted_dup]]).mean())
    removed = labels != np.arange(a.docs)
    precision = float((truth[removed] == truth[labels[removed]]).mean()) if removed.any() else 1.0

    # datasketch MinHashLSH on a sample, for the record.
    from datasketch import MinHash, MinHashLSH
    m = min(a.datasketch_sample, a.docs)
    perms = MinHash(num_perm=a.num_perm, scheme="affine32").permutations
    t0 = time.perf_counter()
    lsh = MinHashLSH(threshold=a.threshold, num_perm=a.num_perm)
    with lsh.insertion_session() as sess:
        for i in range(m):
            sess.insert(i, MinHash(num_perm=a.num_perm, hashvalues=sig[i], permutations=perms, scheme="affine32"))
    for i in range(m):
        lsh.query(MinHash(num_perm=a.num_perm, hashvalues=sig[i], permutations=perms, scheme="affine32"))
    t_ds = time.perf_counter() - t0

    result = {
        "docs": a.docs, "num_perm": a.num_perm, "threshold": a.threshold, "bands": bands, "rows": rows,
        "cores": 1, "cpu_count": os.cpu_count(),
        "seconds_generate": round(t_gen, 1), "seconds_lsh_pairs": round(t_lsh, 1),
        "seconds_lsh_plus_union_find": round(t_cluster, 1),
        "peak_rss_gib": round(peak, 2), "rss_after_generation_gib": round(rss_after_gen, 2),
        "verified_pairs": int(len(pa_)), "planted_duplicates": int(planted_dup.sum()),
        "removed": int(removed.sum()), "recall": round(recall, 4), "precision": round(precision, 4),
        "datasketch_minhashlsh_sample": m, "datasketch_seconds_sample": round(t_ds, 1),
        "datasketch_seconds_extrapolated": round(t_ds * a.docs / m, 0),
    }
    print(json.dumps(result, indent=2))
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "dedup_scale.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
