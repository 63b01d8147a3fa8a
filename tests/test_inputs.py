"""Input resolution and downloads, against a real HTTP server on loopback."""
import gzip
from pathlib import Path

import pytest

from corpus.inputs import (DownloadError, InputError, WarcSource, cc_news_urls, fetch,
                           month_range, resolve_inputs)
from tests.loopback_http import LoopbackServer, Route


def gz_members(*payloads: bytes) -> bytes:
    """Multi-member gzip, one member per record, as Common Crawl writes WARCs."""
    return b"".join(gzip.compress(p) for p in payloads)


def test_local_files_dirs_globs_and_uris(tmp_path):
    (tmp_path / "a").mkdir()
    for name in ["a/one.warc.gz", "two.warc", "notes.txt"]:
        (tmp_path / name).write_bytes(b"x")
    by_dir = resolve_inputs([str(tmp_path)])
    assert [Path(s.location).name for s in by_dir] == ["one.warc.gz", "two.warc"]
    by_glob = resolve_inputs([str(tmp_path / "**" / "*.warc.gz")])
    assert [Path(s.location).name for s in by_glob] == ["one.warc.gz"]
    by_uri = resolve_inputs([f"file://{tmp_path}/a/*.warc.gz"])
    assert by_uri[0].location == f"file://{tmp_path}/a/one.warc.gz"
    # the same file named twice is processed once
    assert len(resolve_inputs([str(tmp_path / "two.warc"), str(tmp_path / "two.warc")])) == 1


def test_missing_inputs_name_the_path(tmp_path):
    with pytest.raises(InputError, match="does not exist: /no/such.warc.gz"):
        resolve_inputs(["/no/such.warc.gz"])
    with pytest.raises(InputError, match="holds no .warc"):
        resolve_inputs([str(tmp_path)])
    with pytest.raises(InputError, match="glob matched no"):
        resolve_inputs([str(tmp_path / "*.warc")])


def test_input_ids_are_stable_and_distinct():
    a = WarcSource("/data/x/CC-NEWS-1.warc.gz")
    b = WarcSource("/data/y/CC-NEWS-1.warc.gz")
    assert a.input_id == WarcSource("/data/x/CC-NEWS-1.warc.gz").input_id
    assert a.input_id != b.input_id and a.input_id.startswith("CC-NEWS-1-")


def test_month_ranges():
    assert month_range("2019-11..2020-02") == [(2019, 11), (2019, 12), (2020, 1), (2020, 2)]
    for bad in ["2019-13", "2019-02..2019-01", "201901"]:
        with pytest.raises(InputError):
            month_range(bad)


def test_cc_news_listing_and_download_with_retries(tmp_path):
    warc = gz_members(b"WARC/1.0\r\n\r\nfirst", b"WARC/1.0\r\n\r\nsecond")
    with LoopbackServer() as srv:
        for month, names in {"2019/01": ["A", "B"], "2019/02": ["C"]}.items():
            listing = "\n".join(f"crawl-data/CC-NEWS/{month}/CC-NEWS-{n}.warc.gz" for n in names)
            srv.routes[f"/crawl-data/CC-NEWS/{month}/warc.paths.gz"] = Route(
                gzip.compress(listing.encode()), fail_first=1)  # listing retried too
        urls = cc_news_urls("2019-01..2019-02", base_url=srv.url, retries=2)
        assert [u.rsplit("/", 1)[1] for u in urls] == [
            "CC-NEWS-A.warc.gz", "CC-NEWS-B.warc.gz", "CC-NEWS-C.warc.gz"]
        assert cc_news_urls("2019-01..2019-02", base_url=srv.url, limit=2) == urls[:2]

        route = srv.routes["/crawl-data/CC-NEWS/2019/01/CC-NEWS-A.warc.gz"] = Route(
            warc, fail_first=2, fail_status=503)
        seen = []
        path = fetch(WarcSource(urls[0]), tmp_path, retries=3, backoff_s=0.01,
                     progress=lambda done, total: seen.append((done, total)))
        assert path.read_bytes() == warc and route.hits == 3
        assert seen[-1] == (len(warc), len(warc))
        # a second fetch reuses the verified file without touching the network
        assert fetch(WarcSource(urls[0]), tmp_path) == path and route.hits == 3
        assert not list(tmp_path.glob(".*.tmp-*"))


def test_truncated_and_missing_downloads_fail_cleanly(tmp_path):
    warc = gz_members(b"WARC/1.0\r\n\r\n" + bytes(range(256)) * 400)
    with LoopbackServer() as srv:
        srv.routes["/short.warc.gz"] = Route(warc, truncate_to=len(warc) // 2)
        with pytest.raises(DownloadError, match="short.warc.gz"):
            fetch(WarcSource(srv.url + "/short.warc.gz"), tmp_path, retries=1, backoff_s=0.01)
        with pytest.raises(InputError, match="404"):
            fetch(WarcSource(srv.url + "/missing.warc.gz"), tmp_path, retries=1)
        with pytest.raises(InputError, match="listing unreachable"):
            cc_news_urls("2020-01", base_url=srv.url, retries=0)
    # nothing half-written is left visible
    assert list(tmp_path.iterdir()) == []


def test_stale_part_files_of_killed_fetches_are_removed(tmp_path):
    """A fetch killed mid-download (kill -9) leaves `.<target>.tmp-<pid>-<random>`; the next
    fetch of that target removes it once its writer process is gone, and leaves a live one's
    alone."""
    import subprocess
    import sys

    warc = gz_members(b"WARC/1.0\r\n\r\nbody")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with LoopbackServer() as srv:
        srv.routes["/x/CC-NEWS-A.warc.gz"] = Route(warc)
        source = WarcSource(srv.url + "/x/CC-NEWS-A.warc.gz")
        stale = tmp_path / f".{source.input_id}.warc.gz.tmp-{dead.pid}-0a1b2c3d"
        stale.write_bytes(b"half a download")
        live = tmp_path / f".{source.input_id}.warc.gz.tmp-1-0a1b2c3d"  # pid 1 is always alive
        live.write_bytes(b"someone else's download")
        other = tmp_path / ".other-target.warc.gz.tmp-999999999-0a1b2c3d"
        other.write_bytes(b"not this target")
        path = fetch(source, tmp_path, retries=0)
        assert path.read_bytes() == warc
    assert not stale.exists()
    assert live.exists() and other.exists()
