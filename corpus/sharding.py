"""shard-corpus: encode the documents, pack blocks, write Parquet shards and the manifest.

    <root>/shards/train/part-NNNNN.parquet   blocks from corpus part NNNNN, train documents
    <root>/shards/valid/part-NNNNN.parquet   the same for validation documents
    <root>/shards/_parts/part-NNNNN.json     per-part counts, written after its shards
    <root>/shards/manifest.json              written last

Work unit = one corpus part. Workers (processes) encode and pack a part and hand the blocks
back; the parent writes the parts in input order and numbers blocks globally, so the output
is the same for any worker count. A rerun with the same parameters skips the parts whose
`_parts/*.json` exists and whose shard files are still there with the sizes they were written
with (a part with a missing or truncated shard is redone); each file is written under a
temporary name and renamed.

The shard schema and the formats are the contract with pretraining: runroot.shard_format.
"""
from __future__ import annotations

import concurrent.futures as cf
import functools
import hashlib
import json
import multiprocessing as mp
import os
import time
import warnings
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
from tokenizers import Tokenizer

from runroot import layout, storage
from runroot.shard_format import (MANIFEST_VERSION, NSP_IS_NEXT, NSP_NOT_NEXT, SPLITS,
                                  check_format, is_pair)
from corpus import bpe
from corpus.documents import iter_document_batches, list_documents, part_sizes
from corpus.mixture import DEFAULT_SOURCE, copies, parse_mix, warn_unseen_sources
from corpus.packing import Blocks, make_packer, static_masks
from corpus.sampling import unit_hash
from corpus.sentences import sentence_cuts

SPLIT_SALT = "valid-split"  # independent of the packing seed: the split never moves
DEFAULT_VALID_FRACTION = 0.01
DEFAULT_BLOCK_SIZE = 512


def choose_dtype(vocab_size: int, dtype: str | None = None) -> np.dtype:
    """uint16 when every id fits, else uint32; a requested dtype that cannot hold the
    vocabulary is an error, not a silent wrap-around."""
    want = np.dtype(dtype) if dtype else np.dtype(np.uint16 if vocab_size <= 65536 else np.uint32)
    if want.kind != "u" or vocab_size - 1 > np.iinfo(want).max:
        raise ValueError(f"token dtype {want} cannot hold a vocabulary of {vocab_size} ids "
                         f"(largest id {vocab_size - 1}); use uint32")
    return want


def is_valid(doc_id: str, valid_fraction: float) -> bool:
    return valid_fraction > 0 and unit_hash(str(doc_id), SPLIT_SALT) < valid_fraction


# ---------------------------------------------------------------- one corpus part

def _encode_sentences(tok: Tokenizer, texts: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Encode each document as its sentence pieces; (ids, token bounds of sentences).

    The pieces partition the text at pre-tokenizer boundaries, so the concatenated ids are
    exactly those of encoding the whole document (see corpus.sentences).
    """
    pieces, owners = [], []
    for d, text in enumerate(texts):
        cuts = sentence_cuts(text)
        for a, b in zip(cuts, cuts[1:]):
            pieces.append(text[a:b])
        owners.append(len(cuts) - 1)
    encode = getattr(tok, "encode_batch_fast", tok.encode_batch)
    encs = encode(pieces, add_special_tokens=False)
    lens = np.fromiter((len(e.ids) for e in encs), dtype=np.int64, count=len(encs))
    flat = np.concatenate([np.array(e.ids, dtype=np.int64) for e in encs]) if encs else \
        np.zeros(0, np.int64)
    starts = np.zeros(len(encs) + 1, dtype=np.int64)
    np.cumsum(lens, out=starts[1:])
    out, k = [], 0
    for n in owners:
        s0 = starts[k]
        # Sentence bounds relative to the document; empty pieces would repeat a bound.
        out.append((flat[s0:starts[k + n]], np.unique(starts[k:k + n + 1] - s0)))
        k += n
    return out


def shard_part(job: dict) -> dict:
    """Encode and pack one corpus part. Returns per split the Blocks and counts."""
    if job.get("threads"):
        os.environ.setdefault("RAYON_NUM_THREADS", str(job["threads"]))
    fs, _ = storage.resolve(job["root"])
    part = _PartPacking(job)
    for bno, batch in enumerate(iter_document_batches(fs, job["path"], job["batch_size"],
                                                      optional=("corpus_name",))):
        for s, docs in part.assign(batch).items():
            if docs:
                part.pack(s, docs, bno)
    return part.result()


class _PartPacking:
    """One corpus part on its way into blocks, in a worker: each document assigned to a
    split (or skipped, counted), encoded and packed; the counts per split and source."""

    def __init__(self, job: dict):
        self.job = job
        self.tok = Tokenizer.from_str(job["tokenizer_json"])
        self.tok.encode_special_tokens = True  # "<s>" written in a document is text, not a special
        self.tok.no_truncation()
        self.tok.no_padding()
        dtype = np.dtype(job["dtype"])
        self.packers = {s: make_packer(job["format"], job["block_size"], bpe.BOS_ID, bpe.EOS_ID,
                                       bpe.PAD_ID, dtype) for s in SPLITS}
        self.counts = {s: {"documents": 0, "content_tokens": 0, "content_tokens_by_source": {},
                           "documents_by_source": {}} for s in SPLITS}
        self.skipped = {"empty_document": 0, "invalid_utf8": 0}
        if job.get("mix"):
            self.skipped["mixture_not_sampled"] = 0  # train documents a weight < 1 left out
        self.blocks: dict[str, list[Blocks]] = {s: [] for s in SPLITS}

    def assign(self, batch: dict[str, list]) -> dict[str, list[tuple[str, str, int]]]:
        """(text, source, copies) of the batch's documents, by split."""
        job = self.job
        by_split: dict[str, list[tuple[str, str, int]]] = {s: [] for s in SPLITS}
        for doc_id, text, source in zip(batch["doc_id"], batch["text"], batch["corpus_name"]):
            source = source or DEFAULT_SOURCE
            if text is None:
                self.skipped["invalid_utf8"] += 1
            elif not text.strip():
                self.skipped["empty_document"] += 1
            elif is_valid(doc_id, job["valid_fraction"]):
                by_split["valid"].append((text, source, 1))  # validation keeps the natural mix
            elif n := copies(doc_id, source, job.get("mix"), job["seed"]):
                by_split["train"].append((text, source, n))
            else:
                self.skipped["mixture_not_sampled"] += 1
                # 0 documents, but the source was seen (a weight-0 source is not a typo)
                self.counts["train"]["documents_by_source"].setdefault(source, 0)
        return by_split

    def pack(self, s: str, docs_in: list[tuple[str, str, int]], bno: int) -> None:
        """Encode and pack one batch's documents of split `s` (batch number `bno`)."""
        encoded = _encode_sentences(self.tok, [t for t, _, _ in docs_in])
        # Up-sampled documents: the first copy in place, further copies after the
        # batch's originals, so that copies do not sit side by side in one block.
        docs, extra = [], []
        c = self.counts[s]
        for d, (_, source, n) in zip(encoded, docs_in):
            if not len(d[0]):
                continue
            docs.append(d)
            extra += [d] * (n - 1)
            c["content_tokens_by_source"][source] = \
                c["content_tokens_by_source"].get(source, 0) + n * len(d[0])
            c["documents_by_source"][source] = c["documents_by_source"].get(source, 0) + n
        docs += extra
        c["documents"] += len(docs)
        c["content_tokens"] += sum(len(d[0]) for d in docs)
        p = self.packers[s]
        if is_pair(self.job["format"]):
            p.add_batch(docs, np.random.default_rng(
                [self.job["seed"], self.job["part_index"], bno, SPLITS.index(s)]))
        else:
            for ids, bounds in docs:
                p.add_document(ids, bounds)
        blocks = p.take()
        if len(blocks):
            self.blocks[s].append(blocks)

    def result(self) -> dict:
        for s in SPLITS:
            blocks = self.packers[s].take(final=True)
            if len(blocks):
                self.blocks[s].append(blocks)
            self.counts[s]["borrowed_tokens"] = getattr(self.packers[s], "borrowed_tokens", 0)
        return {"part_index": self.job["part_index"], "blocks": self.blocks,
                "counts": self.counts, "skipped": self.skipped}


def _concat(blocks: list[Blocks]) -> Blocks:
    cat = lambda xs: np.concatenate(xs) if xs else None  # noqa: E731
    return Blocks(cat([b.input_ids for b in blocks]), cat([b.lengths for b in blocks]),
                  cat([b.segment_ids for b in blocks if b.segment_ids is not None]),
                  cat([b.nsp_label for b in blocks if b.nsp_label is not None]))


def blocks_table(b: Blocks, start: int, dtype: np.dtype, k_masks: int, seed: int,
                 mask_id: int, vocab_size: int) -> pa.Table:
    n, T = b.input_ids.shape
    idx = np.arange(start, start + n, dtype=np.int64)
    cols = {
        "block_index": pa.array(idx),
        "input_ids": pa.FixedSizeListArray.from_arrays(pa.array(b.input_ids.reshape(-1)), T),
        "length": pa.array(b.lengths.astype(np.int32)),
    }
    if b.segment_ids is not None:
        cols["segment_ids"] = pa.FixedSizeListArray.from_arrays(
            pa.array(b.segment_ids.reshape(-1)), T)
        cols["nsp_label"] = pa.array(b.nsp_label.astype(np.int8))
    if k_masks:
        pos, toks = static_masks(b.input_ids, b.lengths, idx, k_masks, seed, mask_id, vocab_size)
        id_type = pa.from_numpy_dtype(dtype)
        cols["mask_positions"] = pa.array(pos, pa.list_(pa.list_(pa.uint16())))
        cols["mask_tokens"] = pa.array([[t.astype(dtype) for t in ts] for ts in toks],
                                       pa.list_(pa.list_(id_type)))
    return pa.table(cols)


def _write_shard(fs, path: str, table: pa.Table, rows_per_group: int) -> int:
    """Write a shard atomically; returns its size in bytes."""
    storage.write_table_atomic(fs, path, table, row_group_size=rows_per_group,
                               compression="zstd")
    return fs.get_file_info(path).size


def shard_damage(fs, out_dir: str, files: list[tuple[str, int | None]]) -> str | None:
    """Why the first of these (relative path, recorded size) shard files cannot be trusted,
    or None. A record says a part was written; only the file itself says it still is.
    (Sizes catch deletion and truncation; records from before sizes were kept have None.)"""
    for rel, size in files:
        info = fs.get_file_info(storage.join(out_dir, rel))
        if info.type != pafs.FileType.File:
            return f"{rel} is missing"
        if size is not None and info.size != size:
            return f"{rel} is {info.size} bytes, but was written with {size}"
    return None


# ---------------------------------------------------------------- the whole corpus

def _params(fmt, block_size, valid_fraction, static_masks_k, seed, dtype, tok_sha, inputs,
            batch_size):
    return {"format": fmt, "block_size": block_size, "valid_fraction": valid_fraction,
            "static_masks": static_masks_k, "seed": seed, "dtype": str(dtype),
            "tokenizer_sha256": tok_sha, "batch_size": batch_size, "inputs": inputs}


def read_manifest(root) -> dict | None:
    fs, base = storage.resolve(root)
    p = storage.join(base, layout.SHARDS_MANIFEST)
    return storage.read_json(fs, p) if storage.exists(fs, p) else None


def shard_corpus(root, fmt: str = "full-sentences", block_size: int = DEFAULT_BLOCK_SIZE,
                 valid_fraction: float = DEFAULT_VALID_FRACTION, static_masks: int = 0,
                 seed: int = 0, workers: int | None = None, dtype: str | None = None,
                 batch_size: int = 1000, rows_per_group: int = 1024,
                 progress=None, mix: dict[str, float] | str | None = None) -> dict:
    """Pack `<root>/corpus/documents` into `<root>/shards/`; returns the manifest.

    fmt: full-sentences | doc-sentences | segment-pair | sentence-pair.
    static_masks: K > 0 stores K fixed masks per block (BERT-style static masking).
    valid_fraction: share of documents (by hash of doc_id) in the valid split.
    workers: processes, one corpus part each (default: CPU count); tokenizers' own threads
    share the remaining cores. progress(stage, done, total) is called per finished part.
    Skips everything when a manifest with the same parameters exists.
    mix: weights per source (`corpus_name`), e.g. {"wikipedia": 2}: train documents are
    packed that many times (corpus.mixture); the manifest reports content tokens per
    source for each split and in total (`tokens_by_source`).
    """
    t0 = time.perf_counter()
    _check_arguments(fmt, valid_fraction, static_masks, block_size)
    tok = bpe.load_tokenizer(root)
    vocab_size = tok.get_vocab_size(with_added_tokens=True)
    mask_id = tok.token_to_id(bpe.MASK)
    id_dtype = choose_dtype(vocab_size, dtype)
    fs, parts = list_documents(root)
    params = _params(fmt, block_size, valid_fraction, static_masks, seed, id_dtype,
                     bpe.tokenizer_sha256(tok), part_sizes(fs, parts), batch_size)
    mix = parse_mix(mix)
    if mix:  # only then, so that shards written before mixtures existed stay valid
        params["mix"] = mix
    if old := _finished_manifest(root, params):
        return old
    writer = _PartWriter(root, parts, params, rows_per_group, progress, functools.partial(
        blocks_table, dtype=id_dtype, k_masks=static_masks, seed=seed, mask_id=mask_id,
        vocab_size=vocab_size))
    todo = [i for i in range(len(parts)) if i not in writer.records]
    tok_json = tok.to_str()
    workers = max(1, min(workers or os.cpu_count() or 1, len(todo) or 1))
    threads = max(1, (os.cpu_count() or 1) // workers)
    jobs = {i: {"root": os.fspath(root), "path": parts[i], "part_index": i,
                "tokenizer_json": tok_json, "dtype": id_dtype.str, "format": fmt,
                "block_size": block_size, "valid_fraction": valid_fraction, "seed": seed,
                "batch_size": batch_size, "threads": threads if workers > 1 else None,
                "mix": mix}
            for i in todo}
    _pack_in_order(jobs, len(parts), workers, writer.finish)

    manifest = _manifest(params, writer.records, parts, vocab_size, mask_id, id_dtype)
    if sum(manifest["splits"][s]["blocks"] for s in SPLITS) == 0:
        raise ValueError(f"empty corpus: no document under {root}/{layout.DOCUMENTS} produced "
                         f"a token (skipped: {manifest['skipped']})")
    warn_unseen_sources(mix, {src for s in SPLITS
                              for src in manifest["splits"][s].get("documents_by_source", {})},
                        "shard-corpus")
    manifest["seconds"] = round(time.perf_counter() - t0, 3)
    storage.write_json_atomic(writer.fs, storage.join(writer.base, layout.SHARDS_MANIFEST),
                              manifest)
    return manifest


def _check_arguments(fmt: str, valid_fraction: float, static_masks: int,
                     block_size: int) -> None:
    check_format(fmt)
    if not 0.0 <= valid_fraction < 1.0:
        raise ValueError(f"valid_fraction must be in [0, 1), got {valid_fraction}")
    if static_masks < 0:
        raise ValueError("static_masks must be >= 0")
    if block_size > 65536:
        raise ValueError("block_size above 65536 does not fit uint16 mask positions")


def _finished_manifest(root, params: dict) -> dict | None:
    """The manifest of shards written with these parameters and still intact, or None. An
    old manifest that is not returned is deleted: it must not vouch for the new shards."""
    old = read_manifest(root)
    if not old:
        return None
    fs, base = storage.resolve(root)
    out_dir = storage.join(base, layout.SHARDS)
    if old.get("params") == params:
        damage = shard_damage(fs, out_dir, [(f["path"], f.get("bytes"))
                                            for s in SPLITS for f in old["splits"][s]["files"]])
        if damage is None:
            return old
        warnings.warn(f"shard-corpus: {damage} under {out_dir}; redoing the parts concerned",
                      stacklevel=3)
    fs.delete_file(storage.join(base, layout.SHARDS_MANIFEST))
    return None


def _pack_in_order(jobs: dict[int, dict], n_parts: int, workers: int,
                   finish: Callable[[int, dict | None], None]) -> None:
    """finish(i, what shard_part returns for job i, or None for a part without a job: it is
    done already) for every part, in part order. With several workers the jobs run in
    processes, at most 2 x workers parts ahead of the one being finished."""
    if workers == 1:
        for i in range(n_parts):
            finish(i, shard_part(jobs[i]) if i in jobs else None)
        return
    ctx = mp.get_context("spawn")  # fork after tokenizers' threads started is unsafe
    with cf.ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        futures = {}
        window = 2 * workers  # bounded: at most this many parts' blocks in memory
        nxt = 0
        for i in range(n_parts):
            while nxt < n_parts and len(futures) < window:
                if nxt in jobs:
                    futures[nxt] = pool.submit(shard_part, jobs[nxt])
                nxt += 1
            fut = futures.pop(i, None)
            finish(i, fut.result() if fut else None)


class _PartWriter:
    """The parent's side of shard-corpus: takes the packed parts in part order, numbers
    their blocks globally per split, writes each part's shards and then its record
    (`shards/_parts/part-NNNNN.json`), and keeps every part's record for the manifest.
    The records of parts finished by an earlier run with the same parameters, whose
    shards are intact, are read at the start: those parts are not packed again."""

    def __init__(self, root, parts: list[str], params: dict, rows_per_group: int, progress,
                 to_table: Callable[[Blocks, int], pa.Table]):
        self.fs, self.base = storage.resolve(root)
        self.out_dir = storage.join(self.base, layout.SHARDS)
        self.parts, self.rows_per_group, self.progress = parts, rows_per_group, progress
        self.to_table = to_table  # blocks_table(blocks, first block index)
        self.params_sha = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()
        self.offsets = {s: 0 for s in SPLITS}
        self.records: dict[int, dict] = {}
        for i in range(len(parts)):
            if rec := self._done_record(i):
                self.records[i] = rec
        self.done = len(self.records)

    def _record_path(self, i: int) -> str:
        return storage.join(self.base, layout.SHARD_PARTS, _part_name(i) + ".json")

    def _done_record(self, i: int) -> dict | None:
        p = self._record_path(i)
        if not storage.exists(self.fs, p):
            return None
        rec = storage.read_json(self.fs, p)
        if rec.get("params_sha256") != self.params_sha:
            return None
        damage = shard_damage(self.fs, self.out_dir, [(e["file"], e.get("bytes"))
                                                      for e in rec["splits"].values() if e["file"]])
        if damage:
            warnings.warn(f"shard-corpus: {damage}; redoing {_part_name(i)}", stacklevel=4)
            return None
        return rec

    def finish(self, i: int, res: dict | None) -> None:
        """Part i is packed (`res`, from shard_part) or was done before (None)."""
        if res is None:  # finished in an earlier run: its record carries its counts
            rec = self.records[i]
        else:
            rec = self.records[i] = self._write(i, res)
            self.done += 1
        for s in SPLITS:
            if rec["splits"][s]["block_index_start"] != self.offsets[s]:
                raise RuntimeError(f"part {i}: stale block numbering; delete {self.out_dir} "
                                   "and rerun")
            self.offsets[s] += rec["splits"][s]["blocks"]
        if self.progress:
            self.progress("shard-corpus", self.done, len(self.parts))

    def _write(self, i: int, res: dict) -> dict:
        """Part i's shards, then its record; returns the record."""
        rec = {"part_index": i, "input": self.parts[i].rsplit("/", 1)[1],
               "params_sha256": self.params_sha, "skipped": res["skipped"], "splits": {}}
        for s in SPLITS:
            b = _concat(res["blocks"][s])
            n = 0 if b.lengths is None else len(b)
            entry = dict(res["counts"][s], blocks=n, block_index_start=self.offsets[s],
                         tokens=int(b.lengths.sum()) if n else 0, file=None)
            if n:
                entry["nsp_not_next"] = int(b.nsp_label.sum()) if b.nsp_label is not None else 0
                rel = f"{s}/{_part_name(i)}.parquet"
                entry["bytes"] = _write_shard(self.fs, storage.join(self.out_dir, rel),
                                              self.to_table(b, self.offsets[s]),
                                              self.rows_per_group)
                entry["file"] = rel
            rec["splits"][s] = entry
        storage.write_json_atomic(self.fs, self._record_path(i), rec)
        return rec


def _part_name(i: int) -> str:
    return f"part-{i:05d}"


def _manifest(params, records, parts, vocab_size, mask_id, id_dtype) -> dict:
    skipped = {"empty_document": 0, "invalid_utf8": 0}
    splits = {}
    for s in SPLITS:
        agg = {"blocks": 0, "tokens": 0, "content_tokens": 0, "documents": 0,
               "borrowed_tokens": 0, "files": []}
        nsp_not_next = 0
        for i in range(len(parts)):
            e = records[i]["splits"][s]
            for k in ("blocks", "tokens", "content_tokens", "documents", "borrowed_tokens"):
                agg[k] += e.get(k, 0)
            nsp_not_next += e.get("nsp_not_next", 0)
            if e["file"]:
                agg["files"].append({"path": e["file"], "blocks": e["blocks"],
                                     "block_index_start": e["block_index_start"],
                                     "bytes": e.get("bytes")})
            for key in ("content_tokens_by_source", "documents_by_source"):
                for source, v in e.get(key, {}).items():
                    agg.setdefault(key, {})[source] = agg.setdefault(key, {}).get(source, 0) + v
        if is_pair(params["format"]):
            agg["nsp"] = {"is_next": agg["blocks"] - nsp_not_next, "not_next": nsp_not_next}
        splits[s] = agg
    tokens_by_source: dict[str, int] = {}
    for agg in splits.values():
        for source, v in agg.get("content_tokens_by_source", {}).items():
            tokens_by_source[source] = tokens_by_source.get(source, 0) + v
    for rec in records.values():
        for k, v in rec["skipped"].items():
            skipped[k] = skipped.get(k, 0) + v
    return {
        "version": MANIFEST_VERSION, "params": params, "format": params["format"],
        "block_size": params["block_size"], "dtype": str(id_dtype), "pad_id": bpe.PAD_ID,
        "bos_id": bpe.BOS_ID, "eos_id": bpe.EOS_ID, "unk_id": bpe.UNK_ID, "mask_id": mask_id,
        "vocab_size": vocab_size, "tokenizer_sha256": params["tokenizer_sha256"],
        "static_masks": params["static_masks"], "seed": params["seed"],
        "valid_fraction": params["valid_fraction"],
        "nsp_label": ({str(NSP_IS_NEXT): "is_next", str(NSP_NOT_NEXT): "not_next"}
                      if is_pair(params["format"]) else None),
        "splits": splits, "skipped": skipped, "mix": params.get("mix"),
        "tokens_by_source": dict(sorted(tokens_by_source.items())),
        "dropped_tokens": {},  # nothing is dropped by design; reasons would be listed here
        "input_parts": len(parts),
    }
