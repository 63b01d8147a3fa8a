"""warcio prints a decompression error met mid-stream to stderr, unnamed, and silently cuts
the data short. Both places it happens (a .warc.gz's gzip member, an HTTP payload with
Content-Encoding: gzip) must become a damaged record with file and offset, and nothing on
the console."""
import gzip
import io
import random
import zlib

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from corpus.warc_file import process_warc
from corpus.warc_reader import CORRUPT_RECORD, read_warc


def page(seed: int) -> bytes:
    """About 120 KB of HTML that compresses poorly: gzip members span several 16 KiB blocks."""
    rng = random.Random(seed)
    words = ["river", "stone", "market", "signal", "window", "garden", "copper", "meadow"]
    paras = "".join("<p>" + " ".join(rng.choice(words) + str(rng.randint(0, 999))
                                      for _ in range(40)) + ".</p>" for _ in range(300))
    return f"<html><body><article>{paras}</article></body></html>".encode()


def crawl(gzipped: bool, encoded_payload: bool = False, pages: int = 3) -> bytes:
    buf = io.BytesIO()
    writer = WARCWriter(buf, gzip=gzipped)
    for i in range(pages):
        body, headers = page(i), [("Content-Type", "text/html; charset=utf-8")]
        if encoded_payload:
            body = gzip.compress(body)
            headers.append(("Content-Encoding", "gzip"))
        writer.write_record(writer.create_warc_record(
            f"http://example.com/{i}", "response", payload=io.BytesIO(body),
            http_headers=StatusAndHeaders("200 OK", headers, protocol="HTTP/1.1")))
    return buf.getvalue()


def flip(data: bytes, at: int, n: int = 8) -> bytes:
    out = bytearray(data)
    for k in range(at, at + n):
        out[k] ^= 0xFF
    return bytes(out)


def first_member_end(data: bytes) -> int:
    d = zlib.decompressobj(31)
    d.decompress(data)
    return len(data) - len(d.unused_data)


def test_a_damaged_gzip_member_is_a_damaged_record_named_not_printed(tmp_path, capfd):
    clean = crawl(gzipped=True)
    end = first_member_end(clean)
    at = end - 3000
    assert at > 16384             # past warcio's first 16 KiB block, where it would print
    path = tmp_path / "member.warc.gz"
    path.write_bytes(flip(clean, at))
    m = process_warc(path, tmp_path / "run")
    assert capfd.readouterr().err == ""
    (err,) = m["errors"]
    assert err["file"] == str(path) and err["offset"] == 0
    assert err["message"] == ("gzip member damaged: Error -3 while decompressing data: "
                              "incorrect data check")
    assert m["counts"][CORRUPT_RECORD] == 1 and m["records_read"] == 3  # the others still read


def test_a_damaged_encoded_payload_is_a_damaged_record_named_not_printed(tmp_path, capfd):
    clean = crawl(gzipped=False, encoded_payload=True)
    second = clean.find(b"WARC/1.", 1)
    body = clean.find(b"\x1f\x8b", second)
    path = tmp_path / "payload.warc"
    path.write_bytes(flip(clean, body + 30000))
    with open(path, "rb") as f:
        records = list(read_warc(f))
    assert capfd.readouterr().err == ""
    assert [r.outcome for r in records] == [None, CORRUPT_RECORD, None]
    assert records[1].offset == second
    assert records[1].error.startswith("HTTP payload (gzip) cut short: Error -3")
    # before, the page was extracted from its first 50 KB as if it were whole
    assert len(records[0].payload) > 50_000 and records[1].payload == b""
