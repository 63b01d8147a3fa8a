"""Resolve build-corpus inputs into WARC sources, and fetch remote ones to local disk.

An input spec is one of:
  - a local file, directory (searched recursively) or glob of `.warc` / `.warc.gz` files;
  - an http(s) URL of one WARC;
  - a URI that pyarrow's filesystems understand (`s3://bucket/key.warc.gz`, `gs://...`,
    `file:///...`), a single object or a prefix/glob;
  - `cc-news:YYYY-MM` or `cc-news:YYYY-MM..YYYY-MM`: every WARC in the monthly CC-NEWS listings
    (`crawl-data/CC-NEWS/YYYY/MM/warc.paths.gz`) under a configurable base URL.

Remote files are streamed to `<dest>/<name>` in chunks (never held in memory), retried with
exponential backoff, and verified (byte count against Content-Length, and the gzip stream read
to its end) before an atomic rename makes them visible. A missing path or an unreachable
listing raises `InputError` naming it.
"""
from __future__ import annotations

import fnmatch
import glob
import gzip
import http.client
import re
import time
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from runroot import storage

CC_BASE_URL = "https://data.commoncrawl.org"
WARC_SUFFIXES = (".warc", ".warc.gz")
CHUNK = 1 << 20
USER_AGENT = "roberta-pipeline/0.1 (+build-corpus)"


class InputError(ValueError):
    """An input spec that names nothing usable: missing path, bad URI, unreachable listing."""


class DownloadError(IOError):
    """A remote file that could not be fetched completely after all retries."""


@dataclass(frozen=True)
class WarcSource:
    """One WARC to process. `location` is a local path or a remote URI."""

    location: str

    @property
    def is_remote(self) -> bool:
        return "://" in self.location and not self.location.startswith("file://")

    @property
    def name(self) -> str:
        return self.location.rstrip("/").rsplit("/", 1)[-1]

    @property
    def input_id(self) -> str:
        from corpus.warc_file import input_id_for

        return input_id_for(self.location)


def _is_warc(name: str) -> bool:
    return name.endswith(WARC_SUFFIXES)


def resolve_inputs(specs: Iterable[str], cc_news_base_url: str = CC_BASE_URL,
                   cc_news_limit: int | None = None) -> list[WarcSource]:
    """Expand every spec into WARC sources, in a deterministic order, without duplicates."""
    seen: dict[str, WarcSource] = {}
    for spec in specs:
        for source in _resolve_one(str(spec), cc_news_base_url, cc_news_limit):
            seen.setdefault(source.location, source)
    if not seen:
        raise InputError(f"no WARC files found in inputs: {list(specs)}")
    return list(seen.values())


def _resolve_one(spec: str, base_url: str, cc_limit: int | None) -> list[WarcSource]:
    if spec.startswith("cc-news:"):
        return [WarcSource(u) for u in cc_news_urls(spec.removeprefix("cc-news:"), base_url,
                                                     limit=cc_limit)]
    if spec.startswith(("http://", "https://")):
        return [WarcSource(spec)]
    if "://" in spec:
        return [WarcSource(u) for u in list_filesystem_uri(spec)]
    return [WarcSource(p) for p in list_local(spec)]


def list_local(spec: str, accept: Callable[[str], bool] = _is_warc,
               kind: str = ".warc/.warc.gz files") -> list[str]:
    """A local file, a directory (searched recursively) or a glob, as resolved paths of the
    files whose name `accept` takes; `kind` names them in errors."""
    path = Path(spec)
    if any(ch in spec for ch in "*?["):
        matches = [Path(p) for p in sorted(glob.glob(spec, recursive=True))
                   if Path(p).is_file() and accept(Path(p).name)]
        if not matches:
            raise InputError(f"glob matched no {kind}: {spec}")
        return [str(p.resolve()) for p in matches]
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.is_file() and accept(p.name))
        if not found:
            raise InputError(f"directory holds no {kind}: {spec}")
        return [str(p.resolve()) for p in found]
    if path.is_file():
        return [str(path.resolve())]
    raise InputError(f"input does not exist: {spec}")


def list_filesystem_uri(uri: str, accept: Callable[[str], bool] = _is_warc,
                        kind: str = ".warc/.warc.gz files") -> list[str]:
    """A single object, a prefix, or a glob on any pyarrow filesystem (s3, gs, hdfs, file)."""
    import pyarrow.fs as pafs

    scheme, rest = uri.split("://", 1)
    is_glob = any(ch in rest for ch in "*?[")
    # The listing root of a glob is the directory before its first wildcard.
    root = re.split(r"[*?\[]", rest, maxsplit=1)[0].rsplit("/", 1)[0] if is_glob else rest
    try:
        fs, path = pafs.FileSystem.from_uri(f"{scheme}://{root}")
    except Exception as exc:  # pyarrow raises several types for bad URIs
        raise InputError(f"cannot open {uri}: {exc}") from exc
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.File and not is_glob:
        found = [info.path]
    elif info.type == pafs.FileType.Directory:
        infos = fs.get_file_info(pafs.FileSelector(path, recursive=True))
        found = [i.path for i in infos if i.is_file and accept(i.base_name)]
        if is_glob:
            pattern = path + rest[len(root):]
            found = [p for p in found if fnmatch.fnmatch(p, pattern)]
    else:
        raise InputError(f"input does not exist: {uri}")
    if not found:
        raise InputError(f"no {kind} under {uri}")
    return [f"{scheme}://{p.lstrip('/')}" if scheme != "file" else f"file://{p}"
            for p in sorted(found)]


# --- CC-NEWS listings -------------------------------------------------------------------

def month_range(spec: str) -> list[tuple[int, int]]:
    """'2019-01' or '2019-01..2019-03' → [(2019, 1), (2019, 2), (2019, 3)]."""
    m = re.fullmatch(r"(\d{4})-(\d{2})(?:\.\.(\d{4})-(\d{2}))?", spec.strip())
    if not m:
        raise InputError(f"bad CC-NEWS month range {spec!r}: expected YYYY-MM or YYYY-MM..YYYY-MM")
    y0, m0 = int(m[1]), int(m[2])
    y1, m1 = (int(m[3]), int(m[4])) if m[3] else (y0, m0)
    if not (1 <= m0 <= 12 and 1 <= m1 <= 12) or (y1, m1) < (y0, m0):
        raise InputError(f"bad CC-NEWS month range {spec!r}")
    months, (y, mo) = [], (y0, m0)
    while (y, mo) <= (y1, m1):
        months.append((y, mo))
        y, mo = (y + 1, 1) if mo == 12 else (y, mo + 1)
    return months


def cc_news_urls(months_spec: str, base_url: str = CC_BASE_URL,
                 limit: int | None = None, retries: int = 4) -> list[str]:
    """WARC URLs of the CC-NEWS months, read from each month's `warc.paths.gz` listing."""
    base = base_url.rstrip("/")
    urls: list[str] = []
    for year, month in month_range(months_spec):
        listing = f"{base}/crawl-data/CC-NEWS/{year:04d}/{month:02d}/warc.paths.gz"
        try:
            body = _get_with_retries(listing, retries=retries)
        except DownloadError as exc:
            raise InputError(f"CC-NEWS listing unreachable: {listing}: {exc}") from exc
        try:
            lines = gzip.decompress(body).decode("utf-8").split()
        except (OSError, EOFError, UnicodeDecodeError) as exc:
            raise InputError(f"CC-NEWS listing is not a gzip list of paths: {listing}") from exc
        urls += [f"{base}/{line.lstrip('/')}" for line in lines if _is_warc(line)]
        if limit is not None and len(urls) >= limit:
            return urls[:limit]
    return urls


# --- Downloads ----------------------------------------------------------------------------

def _backoff(attempt: int, base: float) -> None:
    time.sleep(base * (2 ** attempt))


def _retryable(exc: Exception) -> bool:
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code == 429 or exc.code >= 500
    # IncompleteRead (a connection cut mid-body) is an HTTPException, not an OSError.
    return isinstance(exc, (urllib.error.URLError, http.client.HTTPException, DownloadError,
                            OSError))


def _get_with_retries(url: str, retries: int = 4, backoff_s: float = 0.5,
                      timeout_s: float = 60) -> bytes:
    """Small documents only (listings)."""
    last: Exception | None = None
    for attempt in range(retries + 1):
        try:
            req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
            with urllib.request.urlopen(req, timeout=timeout_s) as resp:
                return resp.read()
        except Exception as exc:  # noqa: BLE001 - classified below
            last = exc
            if not _retryable(exc) or attempt == retries:
                break
            _backoff(attempt, backoff_s)
    raise DownloadError(f"{url}: {last}")


GZIP_MAGIC = b"\x1f\x8b\x08"


def verify_gzip(path: Path) -> None:
    """Check that a downloaded .gz file is complete: its last gzip member ends cleanly.

    A truncated download fails here, not in the middle of a WARC parse. A member that is
    damaged at the source (corrupt deflate data) is not a download fault: we skip to the next
    member's magic bytes, and `process_warc` counts that record. Multi-member gzip (one member
    per record, as Common Crawl writes) is the normal case.
    """
    decomp, pending, ended_cleanly = zlib.decompressobj(wbits=31), b"", True
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            data = pending + chunk
            pending = b""
            while data:
                try:
                    decomp.decompress(data)
                except zlib.error:  # damaged member: resynchronise on the next header
                    start = data.find(GZIP_MAGIC, 1)
                    if start < 0:
                        pending = data[-2:]  # a header may straddle the chunk boundary
                        data = b""
                    else:
                        data = data[start:]
                    decomp = zlib.decompressobj(wbits=31)
                    continue
                data = decomp.unused_data
                ended_cleanly = decomp.eof
                if decomp.eof and data:  # next gzip member
                    decomp = zlib.decompressobj(wbits=31)
    if not ended_cleanly or pending:
        raise DownloadError(f"truncated gzip stream: {path}")


def fetch(source: WarcSource, dest_dir: Path, retries: int = 4, backoff_s: float = 1.0,
          timeout_s: float = 120, progress: Callable[[int, int | None], None] | None = None
          ) -> Path:
    """Stream a remote WARC to `dest_dir/<input_id>.<ext>`, verified, atomically renamed.

    Already-fetched files (final name present) are reused: the rename happens only after
    verification, so a final name always means a complete file. The temporary files of
    fetches that were killed are removed; a concurrent live fetch's is left alone
    (runroot.storage).
    """
    if not source.is_remote:
        path = Path(source.location.removeprefix("file://"))
        if not path.is_file():
            raise InputError(f"input does not exist: {source.location}")
        return path
    dest_dir.mkdir(parents=True, exist_ok=True)
    ext = ".warc.gz" if source.name.endswith(".gz") else ".warc"
    final = dest_dir / f"{source.input_id}{ext}"
    if final.exists():
        return final
    last: Exception | None = None
    for attempt in range(retries + 1):
        try:
            with storage.atomic_file(final) as tmp:
                _stream_to(source.location, tmp, timeout_s, progress)
                if ext == ".warc.gz":
                    verify_gzip(tmp)
            return final
        except Exception as exc:  # noqa: BLE001 - classified by _retryable
            last = exc
            if isinstance(exc, urllib.error.HTTPError) and exc.code == 404:
                raise InputError(f"not found (404): {source.location}") from exc
            if not _retryable(exc) or attempt == retries:
                break
            _backoff(attempt, backoff_s)
    raise DownloadError(f"giving up on {source.location} after {retries + 1} tries: {last}")


def _stream_to(uri: str, tmp: Path, timeout_s: float,
               progress: Callable[[int, int | None], None] | None) -> None:
    if uri.startswith(("http://", "https://")):
        req = urllib.request.Request(uri, headers={"User-Agent": USER_AGENT})
        with urllib.request.urlopen(req, timeout=timeout_s) as resp, open(tmp, "wb") as out:
            expected = resp.headers.get("Content-Length")
            expected = int(expected) if expected is not None else None
            written = _copy(resp, out, expected, progress)
        if expected is not None and written != expected:
            raise DownloadError(f"{uri}: got {written} bytes, Content-Length says {expected}")
        return
    import pyarrow.fs as pafs

    fs, path = pafs.FileSystem.from_uri(uri)
    size = fs.get_file_info(path).size
    with fs.open_input_stream(path) as src, open(tmp, "wb") as out:
        written = _copy(src, out, size, progress)
    if size is not None and written != size:
        raise DownloadError(f"{uri}: got {written} bytes, object size is {size}")


def _copy(src, out, total: int | None, progress) -> int:
    written = 0
    while chunk := src.read(CHUNK):
        out.write(chunk)
        written += len(chunk)
        if progress:
            progress(written, total)
    return written


def remove_download(path: Path, dest_dir: Path) -> None:
    """Delete a fetched copy once its shard is written (CC-NEWS WARCs are ~1 GB each)."""
    if path.parent.resolve() == dest_dir.resolve():
        path.unlink(missing_ok=True)


__all__ = ["CC_BASE_URL", "DownloadError", "InputError", "WarcSource", "cc_news_urls",
           "fetch", "month_range", "remove_download", "resolve_inputs", "verify_gzip"]
