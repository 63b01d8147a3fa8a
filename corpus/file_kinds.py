"""What an input file is, told by its content rather than its name.

Names mislead: Wikimedia's split dumps are called `...-pages-articles1.xml-p1p41242.bz2`,
downloads lose their suffixes, and a `.gz` may hold anything. So: the compression by its
magic bytes (bz2, gzip, xz, zstd), then what the first bytes inside start with:

    <mediawiki ...>            a MediaWiki XML dump (Wikipedia)
    N:N:title lines            the index of a multistream dump (page offsets, no text)
    PAR1 ... PAR1              Parquet
    `ustar` at byte 257        a tar archive (OpenWebText)
    WARC/1.x                   a WARC file (build-corpus's input, not import-corpus's)
    {"...": ...} per line      JSON Lines
    anything else              text (or binary data, which the readers count as not UTF-8)

`open_decompressed` opens any of the four compressions as one binary stream (zstd through
pyarrow, which ships the codec; multistream bz2, multi-member gzip and multi-frame zstd are
read whole).
"""
from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import re
from dataclasses import dataclass
from typing import BinaryIO

HEAD_BYTES = 1 << 16           # decompressed bytes looked at
FIRST_LINE_LIMIT = 16 << 20    # a JSONL line may be a whole long document

# Content kinds.
WIKIPEDIA, WIKI_INDEX, PARQUET, TAR, WARC, JSONL, TEXT, EMPTY = (
    "wikipedia", "wiki-index", "parquet", "tar", "warc", "jsonl", "text", "empty")
SEVEN_ZIP, ZIP = "7z", "zip"    # archives the project cannot open

_NAMES = {WIKIPEDIA: "MediaWiki XML (a Wikipedia dump)",
          WIKI_INDEX: "the index of a multistream Wikipedia dump (page offsets, no text)",
          PARQUET: "Parquet", TAR: "a tar archive", WARC: "a WARC file", JSONL: "JSON Lines",
          TEXT: "text", EMPTY: "nothing (empty)", SEVEN_ZIP: "a 7-Zip archive",
          ZIP: "a zip archive"}
_WIKI_INDEX_LINE = re.compile(rb"^\d+:\d+:")


@dataclass(frozen=True)
class FileKind:
    compression: str | None    # gzip, bz2, xz, zstd, or None
    content: str               # one of the kinds above

    def describe(self) -> str:
        """E.g. 'bz2-compressed MediaWiki XML (a Wikipedia dump)'."""
        name = _NAMES[self.content]
        return f"{self.compression}-compressed {name}" if self.compression else name


def compression_of(head: bytes) -> str | None:
    """The compression whose magic bytes `head` starts with, or None."""
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    # "BZh" + block size 1-9 + the magic of a block (or of the end of an empty stream):
    # plain text may well start with "BZh".
    if re.match(rb"BZh[1-9](1AY&SY|\x17rE8P\x90)", head):
        return "bz2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return "zstd"
    return None


def open_decompressed(path, compression: str | None = "detect") -> BinaryIO:
    """A binary stream of the file's content, decompressed (`detect`: by magic bytes)."""
    if compression == "detect":
        with open(path, "rb") as f:
            compression = compression_of(f.read(16))
    if compression == "gzip":
        return gzip.open(path, "rb")
    if compression == "bz2":
        return bz2.open(path, "rb")
    if compression == "xz":
        return lzma.open(path, "rb")
    if compression == "zstd":
        import pyarrow as pa

        # Errors (damaged or truncated frames) are OSError, like the other codecs'.
        return io.BufferedReader(pa.input_stream(str(path), compression="zstd"))
    return open(path, "rb")


def sniff(path) -> FileKind:
    """The compression and content kind of a local file, from its first bytes."""
    with open(path, "rb") as f:
        raw = f.read(16)
        if not raw:
            return FileKind(None, EMPTY)
        if raw.startswith(b"7z\xbc\xaf\x27\x1c"):
            return FileKind(None, SEVEN_ZIP)
        if raw.startswith(b"PK\x03\x04"):
            return FileKind(None, ZIP)
        if raw.startswith(b"PAR1"):
            f.seek(-4, 2)
            if f.read(4) == b"PAR1":
                return FileKind(None, PARQUET)
    compression = compression_of(raw)
    try:
        with open_decompressed(path, compression) as stream:
            head = stream.read(HEAD_BYTES)
            content = _content_kind(head, stream)
    except (OSError, EOFError, lzma.LZMAError):   # damaged at the start: the readers say how
        content = TEXT
    return FileKind(compression, content)


def _content_kind(head: bytes, stream: BinaryIO) -> str:
    if not head:
        return EMPTY
    if head[257:262] == b"ustar":
        return TAR
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.startswith(b"WARC/"):
        return WARC
    if text.startswith(b"<?xml"):
        text = text[text.find(b"?>") + 2:].lstrip()
    if text.startswith(b"<mediawiki"):
        return WIKIPEDIA
    if _WIKI_INDEX_LINE.match(text):
        return WIKI_INDEX
    if text.startswith(b"{") and _is_json_object(text, stream):
        return JSONL
    return TEXT


def _is_json_object(text: bytes, stream: BinaryIO) -> bool:
    """Whether the first line is one JSON object (reading on when it is longer than the
    head: a JSONL line is often a whole document)."""
    first = text.split(b"\n", 1)[0] if b"\n" in text else text + stream.readline(
        FIRST_LINE_LIMIT)
    try:
        return isinstance(json.loads(first), dict)
    except (ValueError, UnicodeDecodeError):
        return False
