"""Global dedup: all shards in, one deduplicated corpus out, independent of worker count and order.

    deduplicate(root, config) -> report

1. Load every finished shard's metadata and MinHash signatures (not the text) and sort the
   rows by the representative rule: earliest crawl date, then smallest doc_id (then input
   and offset, for the same record given twice). Row i of that order has rank i.
2. Edges between duplicates, each pointing from the best-ranked member of a group:
   - exact: equal content hash, equal normalised URL, equal doc_id;
   - near: MinHash LSH banding (`near_duplicate_pairs`), candidates verified by the
     signatures' estimated Jaccard >= threshold.
3. Connected components by vectorised union-find with min-label hooking: the label of a
   component is its smallest rank, i.e. the representative. Nothing depends on the order
   in which shards were produced, so the result is the same for any fan-out.
4. Write the kept rows to `corpus/documents/part-NNNNN.parquet` (zstd, no signature
   column): a document goes to part `int(doc_id[:8], 16) % n_parts`, parts sorted by
   doc_id, `n_parts = ceil(kept / docs_per_part)`. Written under a temporary directory,
   swapped in, and `corpus/dedup_report.json` is written last.

Why our own banding instead of datasketch's `MinHashLSH`: MinHashLSH keeps a Python dict
per band of bytes keys -> sets of ids, and inserting 1M keys costs minutes and several GB
(datasketch#207, #206, #125), while one numpy sort per band over a uint32 signature matrix
takes seconds and 4 bytes x num_perm per document. Signatures are datasketch's (same
permutations and hash), and the band/row split comes from datasketch's optimiser (`lsh_params`). bench/bench_dedup_scale.py measures both.
"""
from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from runroot import layout, storage
from corpus.config import CorpusConfig
from corpus.schema import document_schema
from corpus.urls import normalize_url

NO_DATE = np.iinfo(np.int64).max  # unknown crawl dates rank last


def lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows) from datasketch's optimiser, weighted 0.1/0.9 towards avoiding false
    negatives: every candidate pair is verified against the threshold afterwards, so false
    positives only cost a comparison. For 0.8 and 128 permutations this gives 14 x 9 (as
    datatrove and RedPajama use), which finds a pair at Jaccard 0.85 with p=0.975, where
    the even weighting (9 x 13) finds it with p=0.69."""
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=(0.1, 0.9))
    return lsh.b, lsh.r


def _group_edges(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edges (first, member) joining every row to the best-ranked row with the same key.
    Rows are in rank order, so a stable sort keeps each group's first row the smallest rank."""
    if len(keys) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    order = np.argsort(keys, kind="stable")
    k = keys[order]
    starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
    first = np.repeat(order[starts], np.diff(np.r_[starts, len(k)]))
    dup = first != order
    return first[dup], order[dup]


def _band_keys(sig: np.ndarray, band: int, rows: int) -> np.ndarray:
    """uint64 hash of each document's band (rows r of the signature): a random-coefficient
    multiply-add mod 2^64. A rare collision only adds a candidate, which verification drops."""
    rng = np.random.default_rng(band)
    coef = rng.integers(1, 2**63, size=rows, dtype=np.uint64) | np.uint64(1)
    block = sig[:, band * rows:(band + 1) * rows].astype(np.uint64)
    with np.errstate(over="ignore"):
        h = (block * coef).sum(axis=1, dtype=np.uint64)
        h ^= h >> np.uint64(29)
    return h


def near_duplicate_pairs(sig: np.ndarray, threshold: float = 0.8, bands: int | None = None,
                         rows: int | None = None, chunk: int = 1 << 16) -> tuple[np.ndarray, np.ndarray]:
    """Verified near-duplicate edges (a, b), a < b, among signature rows (in rank order)."""
    n, num_perm = sig.shape
    if bands is None or rows is None:
        bands, rows = lsh_params(threshold, num_perm)
    firsts, members = [], []
    for band in range(bands):
        a, b = _group_edges(_band_keys(sig, band, rows))
        for s in range(0, len(a), chunk):  # verify in chunks to bound memory
            aa, bb = a[s:s + chunk], b[s:s + chunk]
            jaccard = (sig[aa] == sig[bb]).mean(axis=1)
            ok = jaccard >= threshold
            firsts.append(aa[ok])
            members.append(bb[ok])
    if not firsts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    pairs = np.unique(np.stack([np.concatenate(firsts), np.concatenate(members)]), axis=1)
    return pairs[0].astype(np.int64), pairs[1].astype(np.int64)


def connected_components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Label of each node = smallest node index in its component (union-find, vectorised:
    hook the larger root under the smaller, then flatten by pointer jumping, until stable)."""
    parent = np.arange(n, dtype=np.int64)
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    while len(a):
        ra, rb = parent[a], parent[b]
        differ = ra != rb
        if not differ.any():
            break
        a, b, ra, rb = a[differ], b[differ], ra[differ], rb[differ]
        np.minimum.at(parent, np.maximum(ra, rb), np.minimum(ra, rb))
        while True:
            grand = parent[parent]
            if np.array_equal(grand, parent):
                break
            parent = grand
    return parent


def _list_shards(fs: pafs.FileSystem, base: str) -> list[str]:
    """Finished shards only: those whose manifest exists (the manifest is written last)."""
    sel = pafs.FileSelector(storage.join(base, layout.CORPUS_SHARDS), allow_not_found=True)
    out = []
    for info in fs.get_file_info(sel):
        name = info.base_name
        if name.endswith(".parquet") and not name.startswith("."):
            manifest = storage.join(base, layout.input_manifest(name[:-len(".parquet")]))
            if storage.exists(fs, manifest):
                out.append(info.path)
    return sorted(out)


def _load(fs, shards: list[str]):
    metas, sigs = [], []
    for path in shards:
        t = pq.read_table(path, filesystem=fs, columns=["doc_id", "url", "crawl_date", "content_hash",
                                                          "input_id", "source_offset", "minhash"])
        col = t.column("minhash").combine_chunks()
        width = col.type.list_size
        sigs.append(np.asarray(col.values, dtype=np.uint32).reshape(-1, width))
        metas.append(t.drop(["minhash"]))
    return metas, sigs


def _rank_order(meta: pa.Table | None, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(the rows in rank order, doc_id of each row): earliest crawl date (unknown last),
    then smallest doc_id, then input and offset (for the same record given twice)."""
    if not n:
        return np.zeros(0, np.int64), np.zeros(0, object)
    doc_ids = np.asarray(meta.column("doc_id").to_pylist(), dtype=object)
    dates = meta.column("crawl_date").cast(pa.int64()).fill_null(NO_DATE).to_numpy()
    inputs = np.asarray(meta.column("input_id").to_pylist(), dtype=object)
    offsets = meta.column("source_offset").to_numpy()
    return np.lexsort((offsets, inputs.astype(str), doc_ids.astype(str), dates)), doc_ids


def _key_codes(values) -> np.ndarray:
    """Strings -> small ints, for a fast numeric sort."""
    return np.unique(np.asarray(values, dtype=str), return_inverse=True)[1] if len(values) else \
        np.zeros(0, np.int64)


def _exact_edges(meta: pa.Table | None, rank_order: np.ndarray,
                 ranked_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edges (a, b) between exact duplicates, ranked rows: equal doc_id, content hash or
    normalised URL."""
    if not len(rank_order):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    hashes = np.asarray(meta.column("content_hash").to_pylist(), object)[rank_order]
    urls = np.asarray(meta.column("url").to_pylist(), object)[rank_order]
    edges = [
        _group_edges(_key_codes(ranked_ids)),
        _group_edges(_key_codes(hashes)),
        # Imported documents may have no URL: an empty URL is no key (it joins nothing).
        _group_edges(_key_codes([normalize_url(u) if u else f"\0no-url-{i}"
                                 for i, u in enumerate(urls)])),
    ]
    return np.concatenate([e[0] for e in edges]), np.concatenate([e[1] for e in edges])


def deduplicate(root, config: CorpusConfig | None = None) -> dict:
    """Deduplicate every finished shard under `<root>/corpus/`; return the report (also
    written to `corpus/dedup_report.json`)."""
    cfg = config or CorpusConfig()
    fs, base = storage.resolve(root)
    shards = _list_shards(fs, base)
    metas, sigs = _load(fs, shards)
    sizes = [len(m) for m in metas]
    n = sum(sizes)
    sig = np.concatenate(sigs) if sigs else np.zeros((0, cfg.num_perm), np.uint32)
    del sigs
    meta = pa.concat_tables(metas) if metas else None

    rank_order, doc_ids = _rank_order(meta, n)
    ranked_ids = doc_ids[rank_order]
    ranked_sig = sig[rank_order]
    del sig
    ea, eb = _exact_edges(meta, rank_order, ranked_ids)
    bands, rows = lsh_params(cfg.dedup_threshold, cfg.num_perm)
    na, nb = near_duplicate_pairs(ranked_sig, cfg.dedup_threshold, bands, rows) if n else (ea[:0], eb[:0])

    exact_labels = connected_components(n, ea, eb)
    labels = connected_components(n, np.r_[ea, na], np.r_[eb, nb])
    kept_ranked = labels == np.arange(n)
    n_kept = int(kept_ranked.sum())
    n_exact_removed = int(n - (exact_labels == np.arange(n)).sum())

    # Back to file order: a keep mask per shard row.
    keep = np.zeros(n, bool)
    keep[rank_order[kept_ranked]] = True

    n_parts = max(1, math.ceil(n_kept / cfg.docs_per_part))
    _write_documents(fs, base, shards, sizes, keep, n_parts)

    clusters = _clusters(labels, exact_labels, ranked_ids)
    report = {
        "version": 1,
        "shards": [s.rsplit("/", 1)[-1] for s in shards],
        "params": {"threshold": cfg.dedup_threshold, "num_perm": cfg.num_perm, "bands": bands, "rows": rows,
                   "representative": "earliest crawl_date, then smallest doc_id"},
        "counts": {"documents_in": n, "documents_kept": n_kept, "exact_duplicates": n_exact_removed,
                   "near_duplicates": n - n_kept - n_exact_removed, "clusters": len(clusters),
                   "near_pairs_verified": int(len(na)), "parts": n_parts},
        "kept_ids": sorted(ranked_ids[kept_ranked].tolist()),
        "clusters": clusters,
    }
    storage.write_json_atomic(fs, storage.join(base, layout.DEDUP_REPORT), report)
    return report


def _clusters(labels: np.ndarray, exact_labels: np.ndarray, ids: np.ndarray) -> list[dict]:
    """Components with more than one member, largest first then by kept id. `kind` is
    `exact` when exact edges alone join the members, `near` when none do, else `mixed`."""
    sizes = Counter(labels.tolist())
    out = []
    members_of: dict[int, list[int]] = {}
    for i in np.flatnonzero(np.isin(labels, [k for k, v in sizes.items() if v > 1])):
        members_of.setdefault(int(labels[i]), []).append(int(i))
    for rep, members in members_of.items():
        n_exact_groups = len(set(exact_labels[members].tolist()))
        kind = "exact" if n_exact_groups == 1 else ("near" if n_exact_groups == len(members) else "mixed")
        out.append({"kept": ids[rep], "members": sorted(ids[members].tolist()), "kind": kind})
    out.sort(key=lambda c: (-len(c["members"]), c["kept"]))
    return out


def _write_documents(fs, base: str, shards: list[str], sizes: list[int], keep: np.ndarray, n_parts: int) -> None:
    """Kept rows -> part-NNNNN.parquet in a temporary folder (spill per part, then sort),
    which then replaces `corpus/documents` whole."""
    with storage.atomic_output(fs, storage.join(base, layout.DOCUMENTS)) as tmp_dir:
        spill_dir = storage.join(tmp_dir, "spill")
        fs.create_dir(spill_dir, recursive=True)
        schema = _spill_kept_rows(fs, shards, sizes, keep, n_parts, spill_dir)
        for p in range(n_parts):
            spill = storage.join(spill_dir, f"{p:05d}.parquet")
            if storage.exists(fs, spill):
                t = pq.read_table(spill, filesystem=fs)
                t = t.take(pc.sort_indices(t, [("doc_id", "ascending")]))
            else:  # an empty part still exists, so part numbering never has holes
                t = (schema or document_schema()).empty_table()
            pq.write_table(t, storage.join(tmp_dir, f"part-{p:05d}.parquet"), filesystem=fs,
                           compression="zstd")
        fs.delete_dir(spill_dir)


def _spill_kept_rows(fs, shards: list[str], sizes: list[int], keep: np.ndarray, n_parts: int,
                     spill_dir: str) -> pa.Schema | None:
    """Each shard's kept rows, appended to the spill file of their part (by doc_id); returns
    the documents' schema (None when nothing was kept)."""
    writers: dict[int, pq.ParquetWriter] = {}
    schema = None
    start = 0
    for path, size in zip(shards, sizes):
        mask = keep[start:start + size]
        start += size
        if not mask.any():
            continue
        t = pq.read_table(path, filesystem=fs).drop(["minhash"]).filter(pa.array(mask))
        if "corpus_name" not in t.column_names:  # a shard written before the column existed
            t = t.append_column("corpus_name", pa.array(["cc-news"] * len(t), pa.string()))
        schema = t.schema
        parts = np.array([int(d[:8], 16) % n_parts for d in t.column("doc_id").to_pylist()])
        for p in np.unique(parts):
            if p not in writers:
                writers[p] = pq.ParquetWriter(storage.join(spill_dir, f"{p:05d}.parquet"), schema, filesystem=fs)
            writers[p].write_table(t.filter(pa.array(parts == p)))
    for w in writers.values():
        w.close()
    return schema


def read_report(root) -> dict:
    fs, base = storage.resolve(root)
    return storage.read_json(fs, storage.join(base, layout.DEDUP_REPORT))

