"""build-corpus end to end, as a user runs it: the `roberta` CLI in a subprocess, Prefect in
ephemeral mode, a real process pool, real Parquet, and a real HTTP server on loopback."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from corpus.sample_crawl import generate_crawl
from tests.loopback_http import LoopbackServer, Route

pytestmark = pytest.mark.slow


def roberta(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flows.cli", *args], capture_output=True,
                          text=True, timeout=600, **kw)


def corpus_rows(root: Path) -> list[dict]:
    parts = sorted((root / "corpus" / "documents").glob("part-*.parquet"))
    return [row for p in parts for row in pq.read_table(p).to_pylist()]


@pytest.fixture(scope="module")
def small_crawl(tmp_path_factory) -> Path:
    """Four small WARC files, so a run can be interrupted between inputs."""
    d = tmp_path_factory.mktemp("crawl")
    for i in range(4):
        generate_crawl(d / f"part-{i}.warc.gz", n_pages=40, seed=i)
    return d


def test_sample_crawl_every_record_accounted(tmp_path, sample_warc):
    run = roberta("build-corpus", "--root", str(tmp_path), str(sample_warc))
    assert run.returncode == 0, run.stderr[-3000:]
    manifests = [json.loads(p.read_text()) for p in (tmp_path / "corpus" / "manifests").glob("*.json")]
    assert len(manifests) == 1
    m = manifests[0]
    assert sum(m["counts"].values()) == m["records_read"] > 0
    assert m["counts"]["corrupt_record"] >= 1 and m["errors"]  # the damaged record, reported
    rows = corpus_rows(tmp_path)
    report = json.loads((tmp_path / "corpus" / "dedup_report.json").read_text())
    assert len(rows) == report["counts"]["documents_kept"] > 50
    assert {r["lang"] for r in rows} == {"en"}
    assert len({r["content_hash"] for r in rows}) == len(rows)
    assert "documents kept after dedup" in run.stdout
    assert f"{sample_warc.name} at byte {m['errors'][0]['offset']}" in run.stdout


def test_killed_run_resumes_to_identical_corpus(tmp_path, small_crawl):
    reference = tmp_path / "reference"
    assert roberta("build-corpus", "--root", str(reference), str(small_crawl),
                   "--workers", "1").returncode == 0

    interrupted = tmp_path / "interrupted"
    proc = subprocess.Popen([sys.executable, "-m", "flows.cli", "build-corpus", "--root",
                             str(interrupted), str(small_crawl), "--workers", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    manifests = interrupted / "corpus" / "manifests"
    deadline = time.time() + 300
    while time.time() < deadline and len(list(manifests.glob("*.json"))) < 1:
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)  # the flow and its workers, mid-run
    proc.wait()
    done_before = len(list(manifests.glob("*.json")))
    assert 1 <= done_before < 4, "the kill should land between inputs"
    assert not (interrupted / "corpus" / "documents").exists()

    rerun = roberta("build-corpus", "--root", str(interrupted), str(small_crawl), "--workers", "1")
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert corpus_rows(interrupted) == corpus_rows(reference)


def test_ray_task_runner_builds_the_same_corpus(tmp_path, small_crawl):
    """The fan-out on a real local Ray (prefect-ray's RayTaskRunner) gives the corpus that the
    process pool gives: the result does not depend on the executor."""
    by_ray = roberta("build-corpus", "--root", str(tmp_path / "ray"), str(small_crawl),
                     "--runner", "ray", "--workers", "2")
    assert by_ray.returncode == 0, by_ray.stderr[-3000:]
    by_threads = roberta("build-corpus", "--root", str(tmp_path / "threads"), str(small_crawl),
                         "--runner", "threads", "--workers", "2")
    assert by_threads.returncode == 0
    assert corpus_rows(tmp_path / "ray") == corpus_rows(tmp_path / "threads") != []


def test_unreachable_input_is_reported_and_the_rest_finishes(tmp_path, sample_warc):
    with LoopbackServer() as srv:
        srv.routes["/flaky.warc.gz"] = Route(b"", fail_first=100, fail_status=500)
        run = roberta("build-corpus", "--root", str(tmp_path), str(sample_warc),
                      srv.url + "/flaky.warc.gz", "--runner", "threads",
                      "--download-retries", "1")
    assert run.returncode == 3, run.stderr[-3000:]
    assert "flaky.warc.gz" in run.stdout and "rerun" in run.stdout
    assert len(corpus_rows(tmp_path)) > 50  # the good input still became a corpus


def test_remote_input_is_downloaded_processed_and_removed(tmp_path, sample_warc):
    with LoopbackServer() as srv:
        srv.routes["/crawl/sample.warc.gz"] = Route(sample_warc.read_bytes())
        run = roberta("build-corpus", "--root", str(tmp_path / "remote"),
                      srv.url + "/crawl/sample.warc.gz", "--runner", "threads")
    assert run.returncode == 0, run.stderr[-3000:]
    local = roberta("build-corpus", "--root", str(tmp_path / "local"), str(sample_warc),
                    "--runner", "threads")
    assert local.returncode == 0
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("source", "input_id")}
                          for r in rows]
    assert strip(corpus_rows(tmp_path / "remote")) == strip(corpus_rows(tmp_path / "local"))
    assert not list((tmp_path / "remote" / "corpus" / "downloads").glob("*"))


def test_missing_input_is_a_clear_error(tmp_path):
    run = roberta("build-corpus", "--root", str(tmp_path), "/no/such/crawl.warc.gz")
    assert run.returncode == 2
    assert "does not exist: /no/such/crawl.warc.gz" in run.stderr


def test_uri_root_is_written_at_the_uri(tmp_path, sample_warc):
    # Path("file:///x") is the local relative path "file:/x": the output used to land in a
    # folder named "file:" under the working directory.
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    root = tmp_path / "by-uri"
    run = roberta("build-corpus", "--root", f"file://{root}", str(sample_warc), "--runner",
                  "threads", cwd=cwd)
    assert run.returncode == 0, run.stderr[-3000:]
    assert len(corpus_rows(root)) > 50 and list(cwd.iterdir()) == []
    assert f"file://{root}/corpus/documents" in run.stdout
