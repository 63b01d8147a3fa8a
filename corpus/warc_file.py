"""`process_warc`: one WARC file in, one shard of candidate documents and its manifest out.

The per-file step of build-corpus (one Prefect task per file). It composes the single-job
modules in pipeline order, cheapest first:

    read (warc_reader) -> skip in-file duplicates and clearly unwanted languages (prefilter)
    -> extract (extract) -> language ID (langid) -> quality rules (quality)
    -> content hash + MinHash (hashing) -> row

Every record read ends in exactly one outcome (corpus.outcomes); the manifest's `counts`
sum to `records_read`. Outputs are written atomically, the shard first and the manifest
last, so an input whose manifest exists is finished and is skipped on rerun.
"""
from __future__ import annotations

import datetime as dt
import os
import re
from collections import Counter
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from corpus import file_kinds, outcomes
from corpus.config import CorpusConfig
from corpus.extract import Extractor
from corpus.hashing import MinHasher, content_hash, doc_id
from corpus.html_decode import decode_html
from corpus.input_shard import (ShardWriter, finished_manifest, input_id_from_name,
                                outcome_summary, output_paths)
from corpus.langid import identify, is_wanted
from corpus.prefilter import InFileDuplicates, cheap_text, declared_language, html_digest
from corpus.quality import quality_rejection
from corpus.schema import shard_schema
from corpus.urls import host_of, normalize_url
from corpus.warc_reader import CORRUPT_RECORD, READER_OUTCOMES, read_warc

# What import-corpus reads (a non-WARC input to build-corpus is pointed there).
IMPORTABLE = (file_kinds.WIKIPEDIA, file_kinds.JSONL, file_kinds.PARQUET, file_kinds.TAR,
              file_kinds.TEXT)

ProgressFn = Callable[[int, int, str], None]  # (records read, byte offset, outcome)

_WARC_SUFFIXES = re.compile(r"(\.warc)?(\.gz)?$")


def input_id_for(name: str) -> str:
    """Stable, filesystem-safe id for an input: its file name without .warc(.gz), plus a
    short hash of the full name (URL or path) so equal file names in different places differ.
    `CC-NEWS-20190101000000-00001.warc.gz` -> `CC-NEWS-20190101000000-00001-1a2b3c4d`."""
    return input_id_from_name(name, _WARC_SUFFIXES)


def _parse_warc_date(value: str) -> dt.datetime | None:
    try:
        d = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (d if d.tzinfo else d.replace(tzinfo=dt.timezone.utc)).astimezone(dt.timezone.utc)


def _parse_published(value: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value[:10]) if value else None
    except ValueError:
        return None


def rank_key(crawl_date: dt.datetime | None, did: str) -> tuple[str, str]:
    """The representative rule, as a sortable key: earliest crawl date (unknown last),
    then smallest doc_id. corpus.dedup uses the same order."""
    return (crawl_date.strftime("%Y-%m-%dT%H:%M:%S") if crawl_date else "~", did)


def process_warc(warc_path: str | os.PathLike, out_root: str | os.PathLike,
                 config: CorpusConfig | None = None, *, input_name: str | None = None,
                 input_id: str | None = None, progress: ProgressFn | None = None,
                 force: bool = False, source_name: str | None = None) -> dict:
    """Process one local WARC file into `<root>/corpus/shards/<input-id>.parquet` and
    `<root>/corpus/manifests/<input-id>.json`; return the manifest.

    `input_name` is the input's identity (its URL or original path; default: the path) and
    names it in `source` and errors (`source_name` is an alias). If the shard and manifest
    exist already, nothing is done and the stored manifest is returned with
    `"skipped": True` (unless `force`). Damaged records are counted and listed in `errors`;
    only a missing or unreadable file raises (OSError naming it)."""
    cfg = config or CorpusConfig()
    name = str(input_name or source_name or warc_path)
    iid = input_id or input_id_for(name)
    if not force and (done := finished_manifest(*output_paths(out_root, iid))):
        return done

    out = ShardWriter(out_root, iid, name, shard_schema(cfg.num_perm))
    events: Counter[str] = Counter()
    languages = tuple(cfg.languages)
    hasher = MinHasher(cfg.num_perm, cfg.minhash_seed, cfg.shingle_words)
    dups = InFileDuplicates()
    with out.writing(), open(warc_path, "rb") as f, \
            Extractor(cfg.extract_timeout_s, cfg.timeout_mode, cfg.favor_precision) as extractor:
        for item in read_warc(f, cfg.max_page_bytes):
            outcome, row = item.outcome, None
            if outcome is None:
                outcome, row = _process_candidate(item, cfg, languages, name, iid, dups,
                                                  extractor, hasher, events, out.errors)
            elif outcome == CORRUPT_RECORD:
                out.errors.append({"file": name, "offset": item.offset, "message": item.error})
            out.add(outcome, row)
            if progress is not None:
                progress(out.records, item.offset, outcome)
        events["extraction_restarts"] = extractor.restarts
    return out.write_manifest(outcomes.ALL, events=dict(events), config=cfg.to_dict(),
                              problem=warc_problem(out, warc_path))


def warc_problem(out: ShardWriter, warc_path) -> str | None:
    """Why the input gave no page to extract, pointing at the input (the CLI's exit 3), or
    None: empty, not a WARC at all, or no record that is an HTML page."""
    if out.records and out.records > sum(out.counts[o] for o in READER_OUTCOMES):
        return None
    kind = file_kinds.sniff(warc_path)
    if kind.content == file_kinds.EMPTY:
        return "empty: no WARC records" + (f" ({kind.describe()})" if kind.compression else "")
    if kind.content != file_kinds.WARC and out.counts[CORRUPT_RECORD] == out.records:
        readable = kind.content in IMPORTABLE
        return (f"not a WARC file: {kind.describe()}" +
                (" (roberta import-corpus reads it)" if readable else ""))
    first = next((f"; first error at byte {e['offset']}: {e['message']}" for e in out.errors), "")
    return f"no HTML page to extract ({outcome_summary(out.counts)}){first}"


def _process_candidate(item, cfg: CorpusConfig, languages, name, iid, dups: InFileDuplicates,
                       extractor: Extractor, hasher: MinHasher, events: Counter, errors: list):
    """(outcome, row or None) for one candidate HTML page."""
    html, _charset, fell_back = decode_html(item.payload, item.content_type)
    events["charset_fallback"] += fell_back
    crawl_date = _parse_warc_date(item.crawl_date)
    did = doc_id(item.record_id or f"{iid}@{item.offset}", item.url, item.crawl_date)
    rank = rank_key(crawl_date, did)
    url_key = normalize_url(item.url)
    digest = html_digest(item.payload) if cfg.prefilter else b""

    if cfg.prefilter:
        skip = dups.check(url_key, digest, rank)
        if skip:
            return skip, None
        if declared_language(html, item.content_language) not in languages:
            quick_lang, quick_prob = identify(cheap_text(html))
            if quick_lang not in languages and quick_prob >= cfg.prefilter_lang_threshold:
                return outcomes.PREFILTER_LANG_NOT_WANTED, None

    ex = extractor.extract(html)
    row = None
    if ex.outcome is not None:
        outcome = ex.outcome
        if ex.error:  # timeouts and parser crashes are worth a look; empty pages are not
            errors.append({"file": name, "offset": item.offset, "message": f"{outcome}: {ex.error}"})
    elif len(ex.text.split()) < cfg.min_words:
        # Checked before LID: on a few words (a menu, a caption) LID is a coin toss, and
        # the page fails quality whatever its language.
        outcome = "quality_too_few_words"
    else:
        lang, score = identify(ex.text, cfg.lid_max_chars)
        outcome = is_wanted(lang, score, languages, cfg.lang_threshold)
        if outcome is None:
            rule = quality_rejection(ex.text, lang, cfg)
            outcome = f"quality_{rule}" if rule else outcomes.KEPT
        if outcome == outcomes.KEPT:
            row = {
                "doc_id": did, "url": item.url, "host": host_of(item.url), "crawl_date": crawl_date,
                "published": _parse_published(ex.date), "title": ex.title, "text": ex.text,
                "lang": lang, "lang_score": score, "n_words": len(ex.text.split()),
                "content_hash": content_hash(ex.text), "source": f"{name}@{item.offset}",
                "source_offset": item.offset, "input_id": iid, "corpus_name": cfg.corpus_name,
                "minhash": hasher.signature(ex.text),
            }
    if cfg.prefilter:
        dups.extracted(url_key, digest, rank, kept=row is not None)
    return outcome, row


def read_shard_signatures(path: str, filesystem=None) -> tuple[pa.Table, np.ndarray]:
    """(metadata columns, uint32 signature matrix) of one shard, without the text."""
    t = pq.read_table(path, filesystem=filesystem,
                      columns=["doc_id", "url", "crawl_date", "content_hash", "minhash"])
    sig = t.column("minhash").combine_chunks()
    width = sig.type.list_size
    mat = np.asarray(sig.values).reshape(-1, width) if len(t) else np.zeros((0, width), np.uint32)
    return t.drop(["minhash"]), mat
