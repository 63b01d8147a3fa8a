"""`process_import`: one non-WARC input file in, one shard of candidate documents and its
manifest out, in the same layout and schema as build-corpus's `process_warc`:

    read (corpus.importers) -> too few words -> language ID (langid) -> quality rules
    (quality) -> content hash + MinHash (hashing) -> row with `corpus_name` = --name

There is no extraction step (the inputs are text already; Wikipedia markup is turned into
text by the reader) and no in-file prefilter: exact and near duplicates, within and across
sources, are the global dedup's job (corpus.dedup), which ranks documents with a crawl date
(CC-NEWS) before undated ones, so an article found in both a crawl and OpenWebText keeps
the crawl's copy.

Every record read ends in exactly one outcome: the readers' (bad_record, missing_text,
empty_text, wiki_redirect, wiki_non_article), then those of corpus.outcomes from
too-few-words on. The manifest's `counts` sum to `records_read`; damage is listed in
`errors` with the file and line / member / page (at most MAX_ERRORS entries, the rest
counted in `errors_not_listed`). Shard first, manifest last, both atomic. An input is
skipped only when its manifest holds the same `fingerprint`: the input's size (and
modification time, for files that have one) and every parameter that changes the documents
(source name, format, columns, config); otherwise it is imported again, replacing its shard
and manifest (same input id, so documents are never duplicated). A stream that ends in
damage (a truncated compressed file) marks the manifest `damaged`.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import time
from collections import Counter
from typing import Callable

import pyarrow as pa
import pyarrow.parquet as pq

from corpus import outcomes, storage
from corpus.config import CorpusConfig
from corpus.hashing import MinHasher, content_hash, doc_id
from corpus.importers import EMPTY_TEXT, READER_OUTCOMES, Columns, read_records
from corpus.langid import identify, is_wanted
from corpus.warc_file import _remove_stale_temps, finished_manifest, output_paths
from corpus.quality import RULES, quality_rejection
from corpus.schema import shard_schema
from corpus.urls import host_of

MANIFEST_VERSION = 1
ROWS_PER_BATCH = 1000
MAX_ERRORS = 1000
IMPORT_OUTCOMES = READER_OUTCOMES + [
    "quality_too_few_words", outcomes.LANG_NOT_WANTED, outcomes.LANG_LOW_SCORE,
    *[f"quality_{r}" for r in RULES if r != "too_few_words"], outcomes.KEPT]

ProgressFn = Callable[[int, str], None]  # (records read, outcome)

_STRIP_SUFFIX = re.compile(r"(\.(xml|jsonl|ndjson|json|txt|parquet|tar|tgz|txz))?"
                           r"(\.(gz|bz2|xz|zst))?$", re.I)


def import_input_id(name: str) -> str:
    """Stable, filesystem-safe id of an input: file name without its format suffixes plus
    a short hash of the full location. `enwiki-...-pages-articles1.xml.bz2` ->
    `enwiki-...-pages-articles1-1a2b3c4d`."""
    base = str(name).rstrip("/").rsplit("/", 1)[-1]
    base = _STRIP_SUFFIX.sub("", base)
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", base)[:80] or "input"
    return f"{safe}-{hashlib.blake2b(str(name).encode(), digest_size=4).hexdigest()}"


def input_stat(location: str | os.PathLike) -> dict:
    """What identifies the input's content without reading it: size, plus the modification
    time (local files, filesystem URIs) or Last-Modified / ETag (http). Values that cannot
    be had are None (an unreachable server then compares equal to itself)."""
    loc = str(location)
    if loc.startswith(("http://", "https://")):
        import urllib.request

        from corpus.inputs import USER_AGENT

        try:
            req = urllib.request.Request(loc, method="HEAD", headers={"User-Agent": USER_AGENT})
            with urllib.request.urlopen(req, timeout=30) as resp:
                size = resp.headers.get("Content-Length")
                return {"size": int(size) if size is not None else None,
                        "last_modified": resp.headers.get("Last-Modified"),
                        "etag": resp.headers.get("ETag")}
        except Exception:  # noqa: BLE001 - no HEAD support / unreachable: unknown
            return {"size": None, "last_modified": None, "etag": None}
    if "://" in loc and not loc.startswith("file://"):
        import pyarrow.fs as pafs

        try:
            fs, path = pafs.FileSystem.from_uri(loc)
            info = fs.get_file_info(path)
            return {"size": info.size, "mtime_ns": info.mtime_ns}
        except Exception:  # noqa: BLE001
            return {"size": None, "mtime_ns": None}
    try:
        st = os.stat(loc.removeprefix("file://"))
    except OSError:
        return {"size": None, "mtime_ns": None}
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def import_fingerprint(stat: dict, name: str, fmt: str, columns: Columns,
                       config: CorpusConfig) -> dict:
    """Everything an input's shard depends on, JSON-normalised for comparison with the
    fingerprint stored in its manifest."""
    cfg = config.to_dict() | {"corpus_name": name}
    fp = {"input": stat, "corpus_name": name, "format": fmt,
          "columns": dataclasses.asdict(columns), "config": cfg}
    return json.loads(json.dumps(fp, sort_keys=True, default=str))


def finished_import(out_root, input_id: str, fingerprint: dict) -> dict | None:
    """The stored manifest (marked `skipped`) when the input was imported with this
    fingerprint and its shard exists; None when it must be (re)imported."""
    fs, shard, manifest_file = output_paths(out_root, input_id)
    done = finished_manifest(fs, shard, manifest_file)
    if done and done.get("fingerprint") == fingerprint:
        return done
    return None


def document_outcome(text: str, cfg: CorpusConfig) -> tuple[str, str, float]:
    """(outcome, lang, lang score) of one plain-text document: the language and quality
    steps of build-corpus, in the same order (word count before LID, which is a coin toss
    on a few words)."""
    if not text.strip():
        return EMPTY_TEXT, "und", 0.0
    if len(text.split()) < cfg.min_words:
        return "quality_too_few_words", "und", 0.0
    lang, score = identify(text, cfg.lid_max_chars)
    outcome = is_wanted(lang, score, tuple(cfg.languages), cfg.lang_threshold)
    if outcome is None:
        rule = quality_rejection(text, lang, cfg)
        outcome = f"quality_{rule}" if rule else outcomes.KEPT
    return outcome, lang, score


def process_import(path: str | os.PathLike, out_root: str | os.PathLike, name: str,
                   config: CorpusConfig | None = None, *, fmt: str = "auto",
                   columns: Columns = Columns(), input_name: str | None = None,
                   input_id: str | None = None, progress: ProgressFn | None = None,
                   force: bool = False, fingerprint: dict | None = None) -> dict:
    """Import one local file as corpus `name` into `<root>/corpus/shards/<input-id>.parquet`
    and its manifest; return the manifest (`"skipped": True` when it was done already).

    `input_name` is the input's identity (URL or original path; default: the path): it
    picks the reader under `fmt="auto"`, and names the input in `source` and errors.
    `fingerprint` (default: from the local file's stat and the parameters) decides whether
    an earlier import is still valid (see `import_fingerprint`)."""
    cfg = config or CorpusConfig()
    cfg = CorpusConfig.from_dict(cfg.to_dict() | {"corpus_name": name})
    where_from = str(input_name or path)
    iid = input_id or import_input_id(where_from)
    fs, shard, manifest_file = output_paths(out_root, iid)
    if fingerprint is None:
        fingerprint = import_fingerprint(input_stat(path), name, fmt, columns, cfg)
    if not force and (done := finished_import(out_root, iid, fingerprint)):
        return done
    if storage.exists(fs, manifest_file):
        # Outdated (other input content or parameters): not done while it is replaced.
        fs.delete_file(manifest_file)

    started = time.perf_counter()
    counts: Counter[str] = Counter()
    errors: list[dict] = []
    errors_not_listed = 0
    schema = shard_schema(cfg.num_perm)
    hasher = MinHasher(cfg.num_perm, cfg.minhash_seed, cfg.shingle_words)
    rows: list[dict] = []
    records = n_docs = 0
    text_bytes = 0
    damaged = False

    fs.create_dir(shard.rpartition("/")[0], recursive=True)
    _remove_stale_temps(fs, shard)
    tmp_shard = storage.tmp_name(shard)
    with pq.ParquetWriter(tmp_shard, schema, filesystem=fs, compression="zstd") as writer:
        for rec in read_records(path, where_from, fmt, columns):
            records += 1
            outcome, row = rec.outcome, None
            if outcome is None:
                text_bytes += len(rec.text)
                outcome, lang, score = document_outcome(rec.text, cfg)
                if outcome == outcomes.KEPT:
                    record_id = f"{name}:{rec.key}" if rec.key else f"{where_from}#{rec.where}"
                    row = {
                        "doc_id": doc_id(record_id, rec.url, ""), "url": rec.url or None,
                        "host": host_of(rec.url) if rec.url else None, "crawl_date": None,
                        "published": None, "title": rec.title or None, "text": rec.text,
                        "lang": lang, "lang_score": score, "n_words": len(rec.text.split()),
                        "content_hash": content_hash(rec.text),
                        "source": f"{where_from}@{rec.where}", "source_offset": rec.offset,
                        "input_id": iid, "corpus_name": name,
                        "minhash": hasher.signature(rec.text),
                    }
            damaged = damaged or rec.ends_input  # e.g. a truncated compressed file
            if rec.error:
                if len(errors) < MAX_ERRORS:
                    errors.append({"file": where_from, "where": rec.where, "message": rec.error})
                else:
                    errors_not_listed += 1
            counts[outcome] += 1
            if row is not None:
                rows.append(row)
                n_docs += 1
                if len(rows) >= ROWS_PER_BATCH:
                    writer.write_table(pa.Table.from_pylist(rows, schema=schema))
                    rows = []
            if progress is not None:
                progress(records, outcome)
        if rows:
            writer.write_table(pa.Table.from_pylist(rows, schema=schema))
    storage.commit(fs, tmp_shard, shard)

    if records == 0:
        errors.append({"file": where_from, "where": "file", "message": "no records: empty input"})
    manifest = {
        "version": MANIFEST_VERSION,
        "kind": "import",
        "corpus_name": name,
        "format": fmt,
        "input_id": iid,
        "input": where_from,
        "shard": f"corpus/shards/{iid}.parquet",
        "records_read": records,
        "documents": n_docs,
        "counts": {k: counts.get(k, 0) for k in IMPORT_OUTCOMES} | dict(counts),
        "errors": errors,
        "errors_not_listed": errors_not_listed,
        "damaged": damaged,
        "fingerprint": fingerprint,
        "text_chars": text_bytes,
        "config": cfg.to_dict(),
        "seconds": round(time.perf_counter() - started, 3),
    }
    assert sum(manifest["counts"].values()) == records, "an outcome was lost"
    storage.write_json_atomic(fs, manifest_file, manifest)
    return manifest
