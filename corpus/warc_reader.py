"""Read a WARC file into candidate HTML pages; classify every other record into a named outcome.

One job: turn bytes on disk into `RecordRead` items, one per record read, each either a
candidate (a 200 `response` with an HTML payload) or an outcome saying why not. Damage never
raises: a record that cannot be parsed becomes `corrupt_record` with its offset and the error
message, and reading resumes at the next record boundary that can be found (the next gzip
member for `.warc.gz`, the next `WARC/1.x` line for plain WARC). Garbage or a truncated tail
therefore costs only the records it destroyed.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import BinaryIO, Iterator

from warcio.archiveiterator import WARCIterator
from warcio.bufferedreaders import BufferedReader, ChunkedDataReader, DecompressingBufferedReader

# Outcomes decided while reading (see corpus.outcomes for the full list).
NOT_RESPONSE = "not_response"              # warcinfo, request, metadata, revisit, ...
HTTP_STATUS_NOT_200 = "http_status_not_200"
NOT_HTML = "not_html"                      # PDF, JSON, images, CSS...
EMPTY_PAYLOAD = "empty_payload"
PAGE_TOO_LARGE = "page_too_large"          # payload over config.max_page_bytes
CORRUPT_RECORD = "corrupt_record"          # unparsable header, bad gzip member, truncated payload
READER_OUTCOMES = (NOT_RESPONSE, HTTP_STATUS_NOT_200, NOT_HTML, EMPTY_PAYLOAD, PAGE_TOO_LARGE,
                   CORRUPT_RECORD)

HTML_TYPES = ("text/html", "application/xhtml+xml")
GZIP_MAGIC = b"\x1f\x8b\x08"


@dataclass
class RecordRead:
    """One record read: `outcome is None` means a candidate HTML page for extraction."""
    offset: int
    outcome: str | None
    url: str = ""
    crawl_date: str = ""          # WARC-Date, ISO 8601
    record_id: str = ""
    content_type: str = ""
    content_language: str = ""    # HTTP Content-Language header, if any
    payload: bytes = b""
    error: str = ""               # for corrupt_record: what was wrong
    extra: dict = field(default_factory=dict)


def _is_html(content_type: str, payload: bytes) -> bool:
    if content_type:
        return content_type.split(";")[0].strip().lower() in HTML_TYPES
    head = payload[:512].lstrip().lower()  # no header: sniff, as browsers do
    return head.startswith((b"<!doctype html", b"<html"))


def _classify(rec, offset: int, max_page_bytes: int) -> RecordRead:
    h = rec.rec_headers
    base = dict(offset=offset, url=h.get_header("WARC-Target-URI") or "",
                crawl_date=h.get_header("WARC-Date") or "", record_id=h.get_header("WARC-Record-ID") or "")
    if rec.rec_type != "response" or rec.http_headers is None:
        return RecordRead(outcome=NOT_RESPONSE, **base)
    status = rec.http_headers.get_statuscode()
    stream = _content_stream(rec)
    if status != "200":
        stream.read()  # drain, so a damaged body is still noticed below
        return _payload_damage(stream, base) or RecordRead(
            outcome=HTTP_STATUS_NOT_200, extra={"status": status}, **base)
    content_type = rec.http_headers.get_header("Content-Type") or ""
    payload = stream.read(max_page_bytes + 1)
    if len(payload) > max_page_bytes:
        while stream.read(1 << 20):  # drain without keeping it
            pass
        return _payload_damage(stream, base) or RecordRead(
            outcome=PAGE_TOO_LARGE, content_type=content_type, **base)
    if damaged := _payload_damage(stream, base):
        return damaged
    if not payload.strip():
        return RecordRead(outcome=EMPTY_PAYLOAD, **base)
    if not _is_html(content_type, payload):
        return RecordRead(outcome=NOT_HTML, content_type=content_type, **base)
    return RecordRead(outcome=None, content_type=content_type,
                      content_language=rec.http_headers.get_header("Content-Language") or "",
                      payload=payload, **base)


def _next_boundary(f: BinaryIO, after: int, gzipped: bool) -> int | None:
    """Offset of the next plausible record start after `after`, or None.

    For gzip, a candidate must be a gzip member that decompresses to `WARC/`; a bare magic
    number inside compressed data would otherwise send us chasing garbage."""
    pos = after
    while True:
        f.seek(pos)
        chunk = f.read(1 << 20)
        if not chunk:
            return None
        marker = GZIP_MAGIC if gzipped else b"WARC/1."
        i = chunk.find(marker)
        while i >= 0:
            cand = pos + i
            if not gzipped and (cand == 0 or chunk[i - 1:i] == b"\n"):
                return cand
            if gzipped:
                f.seek(cand)
                try:
                    head = zlib.decompressobj(31).decompress(f.read(4096), 16)
                except zlib.error:
                    head = b""
                if head.startswith(b"WARC/"):
                    return cand
                f.seek(pos + len(chunk))
            i = chunk.find(marker, i + 1)
        if len(chunk) < 1 << 20:
            return None
        pos += len(chunk) - len(marker)  # overlap so a marker across chunks is not missed


class _KeepDecompressErrors:
    """warcio writes a decompression error met in the middle of a stream to stderr, unnamed,
    and returns no more data (bufferedreaders.py, BufferedReader._decompress). Keep it on the
    reader instead: the record is then counted as damaged, with its file and offset, and
    nothing reaches the console. An error in the first block is warcio's own business: it
    takes the data as not compressed."""

    def __init__(self, *args, **kwargs):
        self.decompress_errors: list[str] = []
        super().__init__(*args, **kwargs)

    def _decompress(self, data):
        if self.decompressor and data and self.num_block_read:
            try:
                return self.decompressor.decompress(data)
            except Exception as exc:  # noqa: BLE001 - zlib.error, brotli.error
                self.decompress_errors.append(str(exc))
                return b""
        return super()._decompress(data)


class _MemberReader(_KeepDecompressErrors, DecompressingBufferedReader):
    """The gzip members of a .warc.gz."""


class _PayloadReader(_KeepDecompressErrors, BufferedReader):
    """An HTTP payload with a Content-Encoding (gzip, deflate, br)."""


class _ChunkedPayloadReader(_KeepDecompressErrors, ChunkedDataReader):
    """A chunked HTTP payload, possibly with a Content-Encoding."""


def _content_stream(rec):
    """`rec.content_stream()` (warcio recordloader.py) with readers that keep their
    decompression errors."""
    if not rec.http_headers:
        return rec.raw_stream
    encoding = (rec.http_headers.get_header("content-encoding") or "").lower() or None
    if encoding not in BufferedReader.get_supported_decompressors():
        encoding = None
    if rec.http_headers.get_header("transfer-encoding") == "chunked":
        return _ChunkedPayloadReader(rec.raw_stream, decomp_type=encoding)
    if encoding:
        return _PayloadReader(rec.raw_stream, decomp_type=encoding)
    return rec.raw_stream


def _payload_damage(stream, base: dict) -> RecordRead | None:
    """A corrupt_record for a payload whose Content-Encoding broke off mid-stream."""
    errors = getattr(stream, "decompress_errors", None)
    if not errors:
        return None
    return RecordRead(outcome=CORRUPT_RECORD, error=f"HTTP payload ({stream.decomp_type}) "
                      f"cut short: {errors[0]}", **base)


class _QuietWARCIterator(WARCIterator):
    """warcio writes a warning to stderr when a record is not followed by a blank line
    (a wrong Content-Length), and decompression errors (above). We count both as damage
    ourselves, so silence the prints."""
    INC_RECORD = ""

    def __init__(self, fh, **kwargs):
        super().__init__(fh, **kwargs)   # the record generator has not started yet
        self.reader = _MemberReader(self.fh, block_size=self.reader.block_size)


def _damage_after_record(it: WARCIterator, rec, gzipped: bool) -> str:
    """Finish the record and say what is wrong with it, if anything.

    warcio's LimitReader stops quietly at end of input, a truncated gzip member just ends,
    and a wrong Content-Length only bumps `err_count`; all three must count as damage."""
    raw = rec.raw_stream
    while raw.read(1 << 16):  # whatever the payload decoder left (chunked trailers...)
        pass
    member_errors = it.reader.decompress_errors if it.reader else []
    if member_errors:
        return f"gzip member damaged: {member_errors[0]}"
    if getattr(raw, "limit", 0) > 0:
        return f"truncated record: {raw.limit} of {rec.rec_headers.get_header('Content-Length')} bytes missing"
    errors_before = it.err_count
    it.read_to_end()
    if it.err_count > errors_before:
        return "record not followed by a blank line: wrong Content-Length?"
    dec = it.reader.decompressor if (gzipped and it.reader) else None
    if dec is not None and not dec.eof:
        return "gzip member truncated (no end-of-stream marker)"
    return ""


def read_warc(f: BinaryIO, max_page_bytes: int = 2 << 20) -> Iterator[RecordRead]:
    """Yield one RecordRead per record in the open, seekable binary file `f`."""
    size = f.seek(0, 2)
    f.seek(0)
    first = f.read(3)
    gzipped = first == GZIP_MAGIC
    pos: int | None = 0
    while pos is not None and pos < size:
        f.seek(pos)
        it = _QuietWARCIterator(f)
        offset = pos
        try:
            for rec in it:
                offset = it.offset
                item = _classify(rec, offset, max_page_bytes)
                damage = _damage_after_record(it, rec, gzipped)
                if damage:
                    item = RecordRead(offset=offset, outcome=CORRUPT_RECORD, url=item.url, error=damage)
                yield item
                if damage:
                    raise _Resync
            if it.offset < size:
                # warcio stops silently on EOF inside a record header.
                yield RecordRead(offset=it.offset, outcome=CORRUPT_RECORD,
                                 error=f"unreadable data from offset {it.offset} to end of file ({size})")
            return
        except _Resync:
            pass
        except Exception as e:  # noqa: BLE001 - any parse/decompress error is damage, by design
            # warcio advances `it.offset` to the next record's start once the previous one
            # is consumed, so it names the record that failed to parse.
            offset = max(offset, getattr(it, "offset", offset))
            msg = f"{type(e).__name__}: {str(e).strip()[:200]}"
            if offset == 0 and not first.startswith((GZIP_MAGIC, b"WAR")):
                msg = f"not a WARC file (starts with {first!r}): {msg}"
            yield RecordRead(offset=offset, outcome=CORRUPT_RECORD, error=msg)
        pos = _next_boundary(f, offset + 1, gzipped)


class _Resync(Exception):
    """Internal: stop this iterator and look for the next record boundary."""
