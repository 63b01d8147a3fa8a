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
import json
import os
import re
from typing import Callable

from runroot import storage
from corpus import outcomes
from corpus.config import CorpusConfig
from corpus.hashing import MinHasher, content_hash, doc_id
from corpus.importers import (EMPTY_TEXT, MISSING_TEXT, READER_OUTCOMES, Columns, FormatChoice,
                              choose_format, read_records)
from corpus.input_shard import (ShardWriter, finished_manifest, input_id_from_name,
                                outcome_summary, output_paths)
from corpus.langid import identify, is_wanted
from corpus.quality import RULES, quality_rejection
from corpus.schema import shard_schema
from corpus.urls import host_of

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
    return input_id_from_name(name, _STRIP_SUFFIX)


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
    if fingerprint is None:
        fingerprint = import_fingerprint(input_stat(path), name, fmt, columns, cfg)
    if not force and (done := finished_import(out_root, iid, fingerprint)):
        return done
    out = ShardWriter(out_root, iid, where_from, shard_schema(cfg.num_perm))
    if storage.exists(out.fs, out.manifest_file):
        # Outdated (other input content or parameters): not done while it is replaced.
        out.fs.delete_file(out.manifest_file)

    choice = choose_format(path, where_from, fmt)
    records = _ImportedRecords(out, cfg, where_from)
    with out.writing():
        if choice.format is not None:
            for rec in read_records(path, where_from, choice.format, columns):
                outcome = records.add(rec)
                if progress is not None:
                    progress(out.records, outcome)
    return out.write_manifest(
        IMPORT_OUTCOMES, kind="import", corpus_name=name, format=fmt, read_as=choice.format,
        chosen_by=choice.chosen_by, content=choice.content, note=choice.note or None,
        problem=import_problem(out, choice, columns), warning=whole_file_warning(out, choice),
        errors_not_listed=records.errors_not_listed, damaged=records.damaged,
        fingerprint=fingerprint, text_chars=records.text_chars, config=cfg.to_dict())


def import_problem(out: ShardWriter, choice: FormatChoice, columns: Columns) -> str | None:
    """Why the input gave no usable record, pointing at the input (exit 3), or None: empty,
    not a corpus file, every record damaged or without text, or one whole-file document too
    long to be one."""
    if choice.problem or choice.note:
        return choice.problem or None
    if out.records == 0:
        return "empty: no records"
    usable = out.records - sum(out.counts[o] for o in READER_OUTCOMES)
    if usable == 0:
        hint = ""
        if out.counts[MISSING_TEXT] == out.records and choice.format in ("jsonl", "parquet"):
            hint = f": no text in {columns.text!r}; name the text field with --text-column"
        first = next((f"; first error at {e['where']}: {e['message']}" for e in out.errors), "")
        return f"no usable record ({outcome_summary(out.counts)}){hint}{first}"
    if _whole_file_rule(out, choice) == "quality_too_many_words":
        return whole_file_warning(out, choice)
    return None


def _whole_file_rule(out: ShardWriter, choice: FormatChoice) -> str | None:
    """The quality rule the one document of a whole-file text input failed, or None."""
    if choice.format != "text" or out.records != 1:
        return None
    return next((o for o in out.counts if o.startswith("quality_")), None)


def whole_file_warning(out: ShardWriter, choice: FormatChoice) -> str | None:
    """A file read as one document that failed a quality rule may hold many documents."""
    rule = _whole_file_rule(out, choice)
    if rule is None:
        return None
    what = f" (its content: {choice.content})" if choice.content else ""
    return (f"the whole file was taken as one document{what}, which failed {rule}: if it holds "
            "several documents, pass --format (text-blank-lines, jsonl, wikipedia, owt, parquet)")


class _ImportedRecords:
    """The records of one input on their way into its shard: each one's outcome, the row of
    each kept document, and what the manifest says about the input as a whole."""

    def __init__(self, out: ShardWriter, cfg: CorpusConfig, where_from: str):
        self.out, self.cfg, self.where_from = out, cfg, where_from
        self.hasher = MinHasher(cfg.num_perm, cfg.minhash_seed, cfg.shingle_words)
        self.text_chars = 0
        self.damaged = False        # the stream ended in damage, e.g. a truncated compressed file
        self.errors_not_listed = 0  # beyond MAX_ERRORS

    def add(self, rec) -> str:
        """Count one record (and write its row if it is kept); returns its outcome."""
        outcome, row = rec.outcome, None
        if outcome is None:
            self.text_chars += len(rec.text)
            outcome, lang, score = document_outcome(rec.text, self.cfg)
            if outcome == outcomes.KEPT:
                row = self._row(rec, lang, score)
        self.damaged = self.damaged or rec.ends_input
        if rec.error:
            if len(self.out.errors) < MAX_ERRORS:
                self.out.errors.append({"file": self.where_from, "where": rec.where,
                                        "message": rec.error})
            else:
                self.errors_not_listed += 1
        self.out.add(outcome, row)
        return outcome

    def _row(self, rec, lang: str, score: float) -> dict:
        name = self.cfg.corpus_name
        record_id = f"{name}:{rec.key}" if rec.key else f"{self.where_from}#{rec.where}"
        return {
            "doc_id": doc_id(record_id, rec.url, ""), "url": rec.url or None,
            "host": host_of(rec.url) if rec.url else None, "crawl_date": None,
            "published": None, "title": rec.title or None, "text": rec.text,
            "lang": lang, "lang_score": score, "n_words": len(rec.text.split()),
            "content_hash": content_hash(rec.text),
            "source": f"{self.where_from}@{rec.where}", "source_offset": rec.offset,
            "input_id": self.out.input_id, "corpus_name": name,
            "minhash": self.hasher.signature(rec.text),
        }
