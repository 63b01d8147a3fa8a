"""Damaged inputs are counted with file and offset, and everything readable is still processed."""
import gzip
import sys
import time
import zlib

import pytest

import corpus.extract
from corpus.config import CorpusConfig
from corpus.extract import Extracted, Extractor
from corpus.html_decode import decode_html
from corpus.warc_file import process_warc


def members(data: bytes) -> list[int]:
    """Offsets of the gzip members (one per record) of a well-formed .warc.gz."""
    out, pos = [], 0
    while pos < len(data):
        out.append(pos)
        d = zlib.decompressobj(31)
        d.decompress(data[pos:])
        pos = len(data) - len(d.unused_data)
    return out


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """A damage-free crawl of 40 pages (121 records)."""
    from corpus.sample_crawl import generate_crawl
    path = tmp_path_factory.mktemp("clean") / "clean.warc.gz"
    generate_crawl(path, 40, frac_non_english=0.3, frac_duplicates=0.1, seed=3)
    return path.read_bytes()


def run(tmp_path, name, data, **cfg):
    path = tmp_path / name
    path.write_bytes(data)
    m = process_warc(path, tmp_path / "root", CorpusConfig(**cfg))
    assert sum(m["counts"].values()) == m["records_read"]
    for e in m["errors"]:
        assert e["file"] == str(path) and isinstance(e["offset"], int) and e["message"]
    return m


def test_clean_crawl_has_no_errors(tmp_path, clean):
    m = run(tmp_path, "ok.warc.gz", clean)
    assert m["records_read"] == 121 and m["errors"] == [] and m["documents"] > 5


def test_truncated_gzip(tmp_path, clean):
    cut = len(clean) * 2 // 3
    m = run(tmp_path, "trunc.warc.gz", clean[:cut])
    assert m["counts"]["corrupt_record"] == 1
    assert m["errors"][0]["offset"] <= cut
    assert m["records_read"] > 60


def test_garbage_between_records(tmp_path, clean):
    at = members(clean)[50]
    m = run(tmp_path, "garbage.warc.gz", clean[:at] + b"\x00garbage\n" * 300 + clean[at:])
    assert m["counts"]["corrupt_record"] == 1 and m["errors"][0]["offset"] == at
    assert m["records_read"] == 122  # every real record, plus the garbage counted once


def test_garbage_inside_a_record(tmp_path, clean):
    at = members(clean)[50] + 40
    m = run(tmp_path, "inside.warc.gz", clean[:at] + b"GARBAGE" * 100 + clean[at:])
    assert m["counts"]["corrupt_record"] == 1
    assert m["records_read"] == 121


def test_not_a_warc_file(tmp_path):
    m = run(tmp_path, "notes.warc", b"these are my notes, not a WARC file\n" * 50)
    assert m["records_read"] == 1 and m["counts"]["corrupt_record"] == 1
    assert "not a WARC file" in m["errors"][0]["message"]
    assert m["problem"] == "not a WARC file: text (roberta import-corpus reads it)"


def test_empty_file(tmp_path):
    m = run(tmp_path, "empty.warc.gz", b"")
    assert m["records_read"] == 0 and m["documents"] == 0
    assert m["problem"] == "empty: no WARC records" and m["errors"] == []


@pytest.mark.parametrize("delta", [-40, +300])
def test_wrong_content_length_plain_warc(tmp_path, clean, delta):
    plain = gzip.decompress(clean)
    i = plain.find(b"WARC-Type: response")
    j = plain.find(b"Content-Length: ", i)
    k = plain.find(b"\r\n", j)
    bad = plain[:j] + b"Content-Length: " + str(int(plain[j + 16:k]) + delta).encode() + plain[k:]
    m = run(tmp_path, f"cl{delta}.warc", bad)
    assert m["counts"]["corrupt_record"] >= 1
    assert 118 <= m["records_read"] <= 121
    assert m["documents"] > 5


@pytest.mark.parametrize("delta", [-40, +300])
def test_wrong_content_length_gzip_member(tmp_path, clean, delta):
    offs = members(clean)
    a, b = offs[5], offs[6]  # a response record
    rec = zlib.decompress(clean[a:b], 31)
    j = rec.find(b"Content-Length: ", rec.find(b"WARC-Type: response"))
    k = rec.find(b"\r\n", j)
    rec = rec[:j] + b"Content-Length: " + str(int(rec[j + 16:k]) + delta).encode() + rec[k:]
    co = zlib.compressobj(9, zlib.DEFLATED, 31)
    m = run(tmp_path, f"gzcl{delta}.warc.gz", clean[:a] + co.compress(rec) + co.flush() + clean[b:])
    assert m["counts"]["corrupt_record"] == 1 and m["errors"][0]["offset"] == a
    assert m["records_read"] == 121


def test_huge_page_is_counted_not_parsed(tmp_path, sample_warc):
    m = run(tmp_path, "s.warc.gz", sample_warc.read_bytes(), max_page_bytes=200_000)
    assert m["counts"]["page_too_large"] >= 1


def test_bad_charsets_decode():
    text = "“Quoted” café"
    assert decode_html(text.encode("cp1252"), "text/html; charset=utf-8")[0] == text
    assert decode_html(text.encode("utf-8"), "text/html; charset=x-bogus") == (text, "utf-8", True)
    assert decode_html(b"\x81\x8d\xff", "")[1] in ("cp1252", "latin-1")
    assert decode_html("été".encode("latin-1"), "text/html; charset=iso-8859-1")[0] == "été"


def test_signal_timeout_survives_a_raise_lost_in_a_finalizer(monkeypatch):
    # The CI failure this guards against: the alarm landed in a GC weakref callback, Python
    # printed "Exception ignored", and the page ran to the end. The timer must fire again.
    def busy(seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            pass

    class SlowFinalizer:
        def __del__(self):
            busy(0.2)  # the 0.05 s deadline passes in here, where a raise is only printed

    def slow_page(html, favor_precision=True):
        SlowFinalizer()
        busy(2.0)
        return Extracted(None, text="finished")

    lost = []  # what Python could not raise: proves the first tick landed in the finalizer
    monkeypatch.setattr(sys, "unraisablehook", lambda u: lost.append(u.exc_type.__name__))
    monkeypatch.setattr(corpus.extract, "extract_page", slow_page)
    started = time.monotonic()
    assert Extractor(timeout_s=0.05, mode="signal").extract("<html></html>").outcome == "extraction_timeout"
    assert time.monotonic() - started < 1.0
    assert "_Timeout" in lost


@pytest.mark.parametrize("mode", ["signal", "subprocess"])
def test_extraction_time_limit(mode):
    # ~0.4 s of trafilatura work on this machine; the limit is 0.05 s.
    page = "<html><body><article>" + "".join(f"<p>Paragraph {i} of a long page about many things.</p>"
                                             for i in range(3000)) + "</article></body></html>"
    with Extractor(timeout_s=0.05, mode=mode) as ex:
        if mode == "subprocess":  # warm the child first: its imports are not the page's cost
            assert ex.extract("<html><body><p>" + "Warm up text. " * 30 + "</p></body></html>").outcome is None
        assert ex.extract(page).outcome == "extraction_timeout"
        ok = ex.extract("<html><body><article><p>" + "A sentence of prose. " * 40 + "</p></article></body></html>")
        assert ok.outcome is None and "prose" in ok.text
