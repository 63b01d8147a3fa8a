"""Bytes to text for an HTML payload, never failing on a bad or mislabelled charset.

Order: charset from the HTTP Content-Type, then from a `<meta>` tag, then UTF-8, then
cp1252 (what mislabelled "UTF-8" western pages usually are), then latin-1, which decodes any
byte string. Each step is strict, so a wrong label falls through instead of producing
mojibake; the charset used and whether it was a fallback are returned for the manifest.
"""
from __future__ import annotations

import codecs
import re

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([a-zA-Z0-9_\-:.]+)""", re.I)


def _known(name: str | None) -> str | None:
    if not name:
        return None
    try:
        return codecs.lookup(name.strip().strip("\"'")).name
    except LookupError:
        return None


def declared_charset(content_type: str, payload: bytes) -> str | None:
    """The charset the page claims, from the HTTP header or the first 2 KB of markup."""
    m = re.search(r"charset\s*=\s*[\"']?([^\s;\"']+)", content_type or "", re.I)
    if m:
        return m.group(1)
    m = _META_CHARSET.search(payload[:2048])
    return m.group(1).decode("ascii", "ignore") if m else None


def decode_html(payload: bytes, content_type: str = "") -> tuple[str, str, bool]:
    """Return (text, charset used, fell_back) where fell_back means the declared charset
    was missing, unknown or wrong."""
    declared = declared_charset(content_type, payload)
    first = _known(declared)
    for enc in dict.fromkeys(e for e in (first, "utf-8", "cp1252") if e):
        try:
            return payload.decode(enc), enc, declared is not None and enc != first
        except UnicodeDecodeError:
            continue
    return payload.decode("latin-1"), "latin-1", True
