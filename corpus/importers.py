"""Readers for corpora that come as files, not WARCs: each turns one input file into records.

    read_text        plain text: the whole file is one document, or (blank_lines=True)
                     documents are separated by blank lines (BookCorpus/STORIES style)
    read_jsonl       JSON Lines with a named text column (+ optional id/url/title columns)
    read_parquet     Parquet with a named text column (+ optional id/url/title columns)
    read_archive     OpenWebText-style tar / tar.gz / tar.xz of text files, nested archives
                     (OWT's `urlsf_subset*.xz` inside `openwebtext.tar.xz`) followed
    read_wikipedia   a MediaWiki dump `pages-articles*.xml.bz2`, streamed with bz2 +
                     iterparse (elements cleared as they are read); redirects and pages
                     outside the article namespace are records with their own outcome

A reader yields `Record`s in file order; each is one record read. A record that is already
decided (a line that is not JSON, a broken archive member, a redirect) carries its
`outcome` and, for damage, an `error` naming the place in the file; the caller counts it.
Damage that ends a stream (invalid XML, a truncated compressed stream) is one record too,
after the records read before it, marked `ends_input`. Error messages do not repeat the
record's place (`where`): that is reported beside them. Text is never None on an undecided record.
"""
from __future__ import annotations

import io
import json
import lzma
import re
import tarfile
import xml.etree.ElementTree as ET
import zlib
from dataclasses import dataclass
from typing import Iterator

from corpus import file_kinds
from corpus.wikitext import wiki_to_text

# Outcomes decided by the readers (before language and quality).
BAD_RECORD = "bad_record"            # unparseable line / member / stream, with an error entry
MISSING_TEXT = "missing_text"        # no text field, or not a string
EMPTY_TEXT = "empty_text"            # text present but blank (after markup removal)
WIKI_REDIRECT = "wiki_redirect"
WIKI_NON_ARTICLE = "wiki_non_article"
READER_OUTCOMES = [BAD_RECORD, MISSING_TEXT, EMPTY_TEXT, WIKI_REDIRECT, WIKI_NON_ARTICLE]

FORMATS = ("auto", "text", "text-blank-lines", "jsonl", "parquet", "owt", "wikipedia")
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.bz2", ".xz")


@dataclass
class Record:
    text: str | None
    where: str                 # place in the input: "line 12", "member a/b.txt", "page 7"
    offset: int                # record number within the input (0-based)
    key: str | None = None     # a stable id given by the input (id column, wiki page id)
    url: str = ""
    title: str = ""
    outcome: str | None = None
    error: str | None = None
    ends_input: bool = False   # damage that ends the stream: the rest of the input is lost


# Wikimedia's dump names: whole (`...-pages-articles.xml.bz2`), split
# (`...-pages-articles1.xml-p1p41242.bz2`), multistream (`...-pages-articles-multistream1.xml-p1p41242.bz2`).
_WIKIMEDIA_DUMP = re.compile(r"-pages-(articles|meta-current|meta-history)(-multistream)?\d*"
                             r"\.xml(-p\d+p\d+)?(\.(bz2|gz|xz|zst))?$")
_WIKIMEDIA_INDEX = re.compile(r"-multistream-index\d*\.txt(-p\d+p\d+)?(\.bz2)?$")


def detect_format(name: str) -> str:
    """The reader a file name suggests; `choose_format` asks the content first."""
    n = name.lower()
    if _WIKIMEDIA_DUMP.search(n):
        return "wikipedia"
    for suffix in (".gz", ".bz2", ".xz", ".zst"):
        if n.endswith(suffix) and re.search(r"\.(xml|jsonl|ndjson|json|txt)" + re.escape(suffix) + "$", n):
            n_inner = n[: -len(suffix)]
            break
    else:
        n_inner = n
    if n_inner.endswith(".xml"):
        return "wikipedia"
    if n_inner.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    if n_inner.endswith(".txt"):
        return "text"  # plain.txt.xz is compressed text, not an archive
    if n.endswith(".parquet"):
        return "parquet"
    if n.endswith(ARCHIVE_SUFFIXES):
        return "owt"
    return "text"


# Content kinds (corpus.file_kinds) that name their reader.
_READER_OF_CONTENT = {file_kinds.WIKIPEDIA: "wikipedia", file_kinds.JSONL: "jsonl",
                      file_kinds.PARQUET: "parquet", file_kinds.TAR: "owt"}


@dataclass(frozen=True)
class FormatChoice:
    """The reader for one input, and how it was chosen."""
    format: str | None         # the reader; None: nothing to read (`note` or `problem` says why)
    chosen_by: str             # "--format" (given), "content", or "name" (the content is text)
    content: str = ""          # what the content is, e.g. "bz2-compressed JSON Lines"
    note: str = ""             # an input skipped on purpose: a multistream dump's index
    problem: str = ""          # an input that is no corpus file: a WARC, a 7-Zip archive


def choose_format(path, name: str, fmt: str) -> FormatChoice:
    """The reader for `fmt`; under `auto`, the one the content asks for (compression by
    magic bytes, then the first bytes inside), else the one the name suggests."""
    if fmt != "auto":
        return FormatChoice(fmt, "--format")
    kind = file_kinds.sniff(path)
    content = kind.describe()
    if kind.content in _READER_OF_CONTENT:
        return FormatChoice(_READER_OF_CONTENT[kind.content], "content", content)
    if kind.content == file_kinds.WIKI_INDEX or _WIKIMEDIA_INDEX.search(name.lower()):
        return FormatChoice(None, "content", content, note=(
            "skipped: the index of a multistream dump (page offsets, no text); the dump "
            "beside it holds the pages"))
    if kind.content == file_kinds.WARC:
        return FormatChoice(None, "content", content, problem=(
            f"{content}: crawls are build-corpus's input (roberta build-corpus)"))
    if kind.content in (file_kinds.SEVEN_ZIP, file_kinds.ZIP):
        return FormatChoice(None, "content", content, problem=(
            f"{content}, which cannot be read here: unpack it first (for Wikipedia, take "
            "the .bz2 dump)"))
    return FormatChoice(detect_format(name), "name", content)


def open_text_stream(path, name: str = ""):
    """Binary stream of a possibly compressed file, decompressed by its magic bytes (the
    name is not trusted: see corpus.file_kinds)."""
    return file_kinds.open_decompressed(path)


def _decode(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


# ---------------------------------------------------------------- plain text

def read_text(path, name: str, blank_lines: bool = False) -> Iterator[Record]:
    """One document per file, or documents separated by blank lines."""
    try:
        with open_text_stream(path, name) as f:
            if not blank_lines:
                data = f.read()
                text = _decode(data)
                if text is None:
                    yield Record(None, "file", 0, outcome=BAD_RECORD, error="not UTF-8 text")
                else:
                    yield Record(text, "file", 0)
                return
            block: list[str] = []
            start, n, offset = 1, 0, 0
            for n, raw in enumerate(f, 1):
                line = _decode(raw)
                if line is None:
                    yield Record(None, f"line {n}", offset, outcome=BAD_RECORD,
                                 error="not UTF-8")
                    offset += 1
                    continue
                if line.strip():
                    if not block:
                        start = n
                    block.append(line)
                elif block:
                    yield Record("".join(block).strip(), f"line {start}", offset)
                    offset += 1
                    block = []
            if block:
                yield Record("".join(block).strip(), f"line {start}", offset)
    except (OSError, EOFError, lzma.LZMAError) as exc:  # a truncated/corrupt compressed file
        yield Record(None, "stream", -1, outcome=BAD_RECORD, error=f"unreadable stream: {exc}",
                     ends_input=True)


# ---------------------------------------------------------------- JSONL and Parquet

@dataclass(frozen=True)
class Columns:
    text: str = "text"
    id: str | None = "id"      # optional columns: used when present
    url: str | None = "url"
    title: str | None = "title"


def _row_record(row: dict, cols: Columns, where: str, offset: int) -> Record:
    text = row.get(cols.text)
    key = row.get(cols.id) if cols.id else None
    url = row.get(cols.url) if cols.url else None
    title = row.get(cols.title) if cols.title else None
    rec = Record(text if isinstance(text, str) else None, where, offset,
                 key=None if key is None else str(key),
                 url=url if isinstance(url, str) else "",
                 title=title if isinstance(title, str) else "")
    if not isinstance(text, str):
        rec.outcome = MISSING_TEXT
        rec.error = (f"no {cols.text!r} field" if cols.text not in row
                     else f"{cols.text!r} is {type(text).__name__}, not a string")
    return rec


def read_jsonl(path, name: str, cols: Columns = Columns()) -> Iterator[Record]:
    offset = 0
    try:
        with open_text_stream(path, name) as f:
            for n, raw in enumerate(f, 1):
                if not raw.strip():
                    continue  # blank lines are not records
                try:
                    row = json.loads(raw)
                except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                    yield Record(None, f"line {n}", offset, outcome=BAD_RECORD,
                                 error=f"not JSON: {exc}")
                else:
                    if isinstance(row, dict):
                        yield _row_record(row, cols, f"line {n}", offset)
                    else:
                        yield Record(None, f"line {n}", offset, outcome=BAD_RECORD,
                                     error=f"a JSON {type(row).__name__}, not an object")
                offset += 1
    except (OSError, EOFError, lzma.LZMAError) as exc:
        yield Record(None, "stream", -1, outcome=BAD_RECORD, error=f"unreadable stream: {exc}",
                     ends_input=True)


def read_parquet(path, name: str, cols: Columns = Columns(), batch_size: int = 1024
                 ) -> Iterator[Record]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for bad files
        yield Record(None, "file", -1, outcome=BAD_RECORD, error=f"not a Parquet file: {exc}",
                     ends_input=True)
        return
    names = pf.schema_arrow.names
    if cols.text not in names:
        # Every row is a record without text: counted, with one error naming the file.
        for i in range(pf.metadata.num_rows):
            yield Record(None, f"row {i}", i, outcome=MISSING_TEXT,
                         error=None if i else f"no column {cols.text!r} (columns: {names})")
        return
    wanted = [c for c in (cols.text, cols.id, cols.url, cols.title) if c and c in names]
    offset = 0
    for batch in pf.iter_batches(batch_size=batch_size, columns=list(dict.fromkeys(wanted))):
        for row in batch.to_pylist():
            yield _row_record(row, cols, f"row {offset}", offset)
            offset += 1


# ---------------------------------------------------------------- OpenWebText-style archives

def _is_archive(member: str) -> bool:
    return detect_format(member) == "owt"


def read_archive(path, name: str, max_depth: int = 3) -> Iterator[Record]:
    """Every regular file in the archive is one document; nested archives are opened."""
    counter = [0]
    try:
        f = open_text_stream(path)
    except OSError as exc:
        yield Record(None, "member (archive)", 0, outcome=BAD_RECORD,
                     error=f"not a readable archive: {exc}", ends_input=True)
        return
    with f:
        yield from _read_tar(f, "", counter, max_depth)


def _read_tar(fileobj, prefix: str, counter: list[int], depth: int) -> Iterator[Record]:
    def bad(where: str, msg: str, ends_input: bool = False) -> Record:
        rec = Record(None, where, counter[0], outcome=BAD_RECORD, error=msg,
                     ends_input=ends_input)
        counter[0] += 1
        return rec

    try:
        tar = tarfile.open(fileobj=fileobj, mode="r|*")
    except (tarfile.TarError, OSError, EOFError, lzma.LZMAError) as exc:
        yield bad(f"member {prefix.rstrip('/') or '(archive)'}", f"not a readable tar archive: {exc}",
                  ends_input=not prefix)
        return
    members = iter(tar)
    while True:
        try:
            member = next(members)
        except StopIteration:
            break
        except (tarfile.TarError, OSError, EOFError, lzma.LZMAError, zlib.error) as exc:
            yield bad(f"member {prefix}(after the last good one)", f"archive damaged: {exc}",
                      ends_input=True)
            break
        if not member.isfile():
            continue
        where = f"member {prefix}{member.name}"
        try:
            data = tar.extractfile(member).read()
        except (tarfile.TarError, OSError, EOFError, lzma.LZMAError, zlib.error) as exc:
            yield bad(where, f"truncated or damaged: {exc}", ends_input=True)
            break  # a stream cannot resynchronise after a damaged member
        if _is_archive(member.name) and depth > 0:
            yield from _read_tar(io.BytesIO(data), f"{prefix}{member.name}/", counter, depth - 1)
            continue
        text = _decode(data)
        if text is None:
            yield bad(where, "not UTF-8 text")
            continue
        yield Record(text, where, counter[0], key=f"{prefix}{member.name}")
        counter[0] += 1


# ---------------------------------------------------------------- Wikipedia dumps

def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def read_wikipedia(path, name: str, namespaces: tuple[int, ...] = (0,)) -> Iterator[Record]:
    """Pages of a `pages-articles*.xml(.bz2)` dump, streamed. Articles (namespace 0, not a
    redirect) come with their markup turned into plain text (corpus.wikitext); redirects
    and other namespaces are records with outcomes wiki_redirect / wiki_non_article."""
    base_url = ""
    offset = 0
    stream = open_text_stream(path, name)
    try:
        context = ET.iterparse(stream, events=("start", "end"))
        root = None
        for event, elem in context:
            if root is None:
                root = elem
            if event != "end":
                continue
            tag = _local(elem.tag)
            if tag == "base" and not base_url and elem.text:  # siteinfo: .../wiki/Main_Page
                base_url = elem.text.rsplit("/", 1)[0] + "/"
            elif tag == "page":
                yield _page_record(elem, offset, base_url, namespaces)
                offset += 1
                root.clear()  # drop the finished page (and siblings) from the tree
    except ET.ParseError as exc:
        line, col = exc.position
        yield Record(None, f"line {line}", offset, outcome=BAD_RECORD,
                     error=f"invalid XML at line {line}, column {col}: {exc}", ends_input=True)
    except (OSError, EOFError, lzma.LZMAError) as exc:
        yield Record(None, "stream", offset, outcome=BAD_RECORD,
                     error=f"unreadable stream after {offset} pages: {exc}", ends_input=True)
    finally:
        stream.close()


def _page_record(page, offset: int, base_url: str, namespaces) -> Record:
    title, ns, page_id, text, redirect = "", 0, None, None, False
    for child in page:
        tag = _local(child.tag)
        if tag == "title":
            title = child.text or ""
        elif tag == "ns":
            try:
                ns = int(child.text or 0)
            except ValueError:
                ns = -1
        elif tag == "id":
            page_id = child.text
        elif tag == "redirect":
            redirect = True
        elif tag == "revision":
            for sub in child:
                if _local(sub.tag) == "text":
                    text = sub.text or ""
    url = f"{base_url}{title.replace(' ', '_')}" if base_url and title else ""
    rec = Record(None, f"page {offset}", offset, key=f"page:{page_id}" if page_id else None,
                 url=url, title=title)
    if ns not in namespaces:
        rec.outcome = WIKI_NON_ARTICLE
    elif redirect or (text or "").lstrip()[:9].upper() == "#REDIRECT":
        rec.outcome = WIKI_REDIRECT
    elif text is None:
        rec.outcome, rec.error = MISSING_TEXT, f"{title!r}: no revision text"
    else:
        rec.text = wiki_to_text(text)
    return rec


def read_records(path, name: str, fmt: str, cols: Columns = Columns()) -> Iterator[Record]:
    """The reader for `fmt` (auto: see `choose_format`; an input with nothing to read
    yields nothing)."""
    if fmt == "auto":
        fmt = choose_format(path, name, fmt).format
        if fmt is None:
            return iter(())
    if fmt == "text":
        return read_text(path, name, blank_lines=False)
    if fmt == "text-blank-lines":
        return read_text(path, name, blank_lines=True)
    if fmt == "jsonl":
        return read_jsonl(path, name, cols)
    if fmt == "parquet":
        return read_parquet(path, name, cols)
    if fmt == "owt":
        return read_archive(path, name)
    if fmt == "wikipedia":
        return read_wikipedia(path, name)
    raise ValueError(f"unknown format {fmt!r}: choose one of {', '.join(FORMATS)}")
