"""Cheap-first skipping: decide, before trafilatura (about 95% of the cost), that a page
cannot end up in the corpus.

Three skips, each chosen so that the output matches extracting everything:
- `duplicate_html_in_file`: byte-identical HTML extracts to identical text, hence the same
  content hash, so global exact dedup would drop all copies but the representative. We only
  skip a copy that ranks *after* (later crawl date, then larger doc_id) one already extracted,
  so the representative is always extracted.
- `duplicate_url_in_file`: same normalised URL as a page already *kept* in this file and
  ranking after it. Global URL dedup would drop it for that kept page. A refetch of a page
  that was rejected is still extracted: its new content might pass.
- `prefilter_lang_not_wanted`: the page's paragraph text is, by a quick LID, clearly
  (probability >= `prefilter_lang_threshold`) in an unwanted language, and the page does not
  declare a wanted language (`<html lang>` or Content-Language). A page that declares a
  wanted language is always extracted, so mislabelled pages only cost time.
The remaining risk (a skipped page that full extraction would have kept) is measured by
bench/bench_corpus_throughput.py as overlap with the extract-everything baseline.
"""
from __future__ import annotations

import hashlib
import html as htmllib
import re

_HTML_LANG = re.compile(r"<html\b[^>]*?\blang\s*=\s*[\"']?\s*([a-zA-Z]{2,3})", re.I)
_PARAGRAPH = re.compile(r"<p\b[^>]*>(.*?)</p\s*>", re.I | re.S)
_SCRIPT_STYLE = re.compile(r"<(script|style|noscript)\b.*?</\1\s*>", re.I | re.S)
_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")


def declared_language(html: str, content_language: str = "") -> str | None:
    """Primary language subtag the page declares (`<html lang>`, else Content-Language)."""
    m = _HTML_LANG.search(html[:4096])
    if m:
        return m.group(1).lower()
    if content_language.strip():
        return content_language.split(",")[0].strip()[:3].split("-")[0].lower() or None
    return None


def cheap_text(html: str, max_chars: int = 5000) -> str:
    """Text of the page's <p> elements (where articles live; menus are lists and links),
    or of the whole page without scripts when it has no paragraphs. Regexes, no DOM: this
    must cost a small fraction of an extraction."""
    paras = _PARAGRAPH.findall(html)
    raw = " ".join(paras) if paras else _SCRIPT_STYLE.sub(" ", html)
    text = _SPACE.sub(" ", htmllib.unescape(_TAG.sub(" ", raw))).strip()
    return text[:max_chars]


def html_digest(payload: bytes) -> bytes:
    return hashlib.blake2b(payload, digest_size=16).digest()


class InFileDuplicates:
    """Remembers, per normalised URL and per raw-HTML digest, the best-ranked page seen so
    far, where rank = (crawl_date, doc_id) is the global dedup's representative rule."""

    def __init__(self) -> None:
        self._by_html: dict[bytes, tuple[str, str]] = {}
        self._kept_by_url: dict[str, tuple[str, str]] = {}

    def check(self, url_key: str, digest: bytes, rank: tuple[str, str]) -> str | None:
        """Outcome name if the page can be skipped, else None."""
        seen = self._by_html.get(digest)
        if seen is not None and seen <= rank:
            return "duplicate_html_in_file"
        seen = self._kept_by_url.get(url_key)
        if seen is not None and seen <= rank:
            return "duplicate_url_in_file"
        return None

    def extracted(self, url_key: str, digest: bytes, rank: tuple[str, str], kept: bool) -> None:
        if digest not in self._by_html or rank < self._by_html[digest]:
            self._by_html[digest] = rank
        if kept and (url_key not in self._kept_by_url or rank < self._kept_by_url[url_key]):
            self._kept_by_url[url_key] = rank
