"""finetune-eval as a user runs it: the CLI, Prefect ephemeral, a fan-out of real finetuning
jobs on CPU, the appended results table, job caching and the nightly mode."""
import json
import os
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from evaluation.synthetic import make_tiny_checkpoint, write_synthetic_sst2
from tests.conftest import REPO
from tests.fixtures_eval import pretrain_style_checkpoint

pytestmark = pytest.mark.slow


def roberta(*args: str, cwd=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if cwd is not None:     # the checkout stays importable from another working directory
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "flows.cli", *args], capture_output=True,
                          text=True, timeout=600, env=env, cwd=cwd)


def test_fan_out_results_cache_and_nightly(tmp_path):
    root, data = tmp_path / "run", tmp_path / "data"
    checkpoint = pretrain_style_checkpoint(root, "demo", 20)
    make_tiny_checkpoint(root / "pretrain" / "demo" / "checkpoints" / ".tmp-step-00000030")
    write_synthetic_sst2(data, n_train=300, n_dev=100, seed=0)
    (data / "MRPC").mkdir()
    (data / "MRPC" / "train.tsv").write_text("Quality\t#1 ID\n1\tno strings here\n")  # malformed
    (data / "MRPC" / "dev.tsv").write_text("Quality\t#1 ID\n1\tno strings here\n")

    args = ["finetune-eval", "--root", str(root), "--data-dir", str(data), "--tasks",
            "sst2,mrpc", "--seeds", "1,2", "--lrs", "1e-3", "--batch-sizes", "8",
            "--epochs", "3"]
    run = roberta(*args)
    assert run.returncode == 3, run.stderr[-3000:]  # the MRPC jobs failed, SST-2 finished
    table = pq.read_table(root / "results" / "results.parquet").to_pylist()
    sst2 = [r for r in table if r["task"] == "sst2" and r["metric"] == "accuracy"]
    assert len(sst2) == 1 and sst2[0]["n_seeds"] == 2 and sst2[0]["value"] >= 80  # chance ~50
    assert sst2[0]["checkpoint"] == str(checkpoint.resolve()) and sst2[0]["checkpoint_step"] == 20
    assert sst2[0]["standin"] and sst2[0]["data"] == str(data.resolve())
    assert (sst2[0]["n_train"], sst2[0]["n_dev"]) == (300, 100)
    assert sst2[0]["model"] == "demo"
    mrpc = [r for r in table if r["task"] == "mrpc"]
    assert mrpc and all(r["value"] is None and "train.tsv" in r["error"] for r in mrpc)
    assert mrpc[0]["error"].splitlines()[0] in run.stdout  # not cut, though stdout is a pipe
    for ext in ("csv", "md", "png"):
        assert (root / "results" / f"results.{ext}").stat().st_size > 0

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    wanted = ["finetune-eval-results", "finetune-eval-report", "finetune-eval-chart"]
    with get_client(sync_client=True) as client:  # the same PREFECT_HOME as the CLI's run
        artifacts = {a.key: a for a in client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=wanted)))}
    assert set(artifacts) == set(wanted)
    assert artifacts["finetune-eval-chart"].data.startswith("data:image/png;base64,")

    jobs = sorted((root / "results" / "jobs" / "sst2").glob("*.json"))
    assert len(jobs) == 2  # failed jobs are not cached: a rerun retries them
    stamps = [p.stat().st_mtime_ns for p in jobs]
    again = roberta(*args)
    assert again.returncode == 3
    assert [p.stat().st_mtime_ns for p in jobs] == stamps  # finished jobs were not rerun
    rerun = pq.read_table(root / "results" / "results.parquet").to_pylist()
    assert rerun[:len(table)] == table  # appended, never overwritten
    new = rerun[len(table):]            # the retried MRPC jobs, not SST-2's cached results again
    assert new and all(r["task"] == "mrpc" and r["error"] for r in new)

    nightly = roberta("finetune-eval", "--root", str(root), "--data-dir", str(data),
                      "--tasks", "sst2", "--nightly")
    assert nightly.returncode == 0 and "nothing to evaluate" in nightly.stdout

    shown = roberta("results", "--root", str(root))
    assert shown.returncode == 0 and "sst2" in shown.stdout


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    run = roberta("finetune-eval", "--root", str(tmp_path), "--data-dir", str(tmp_path))
    assert run.returncode == 2 and "no pretrain checkpoint" in run.stderr


def test_bad_data_fails_its_jobs_and_the_cache_follows_the_data(tmp_path):
    from tests.fixtures_eval import write_glue_fixture, write_squad_fixture

    root, data = tmp_path / "run", tmp_path / "data"
    pretrain_style_checkpoint(root, "demo", 20)
    for t in ("stsb", "sst2", "mrpc"):
        write_glue_fixture(data, t)
    stsb_train = data / "STS-B" / "train.tsv"
    stsb_train.write_text(stsb_train.read_text().replace("\t3.750\n", "\tnan\n"))
    write_squad_fixture(data, 2)
    (data / "SQuAD" / "dev-v2.0.json").write_text('{"data": []}')
    args = ["finetune-eval", "--root", str(root), "--data-dir", str(data), "--tasks",
            "stsb,squad2,sst2,mrpc", "--seeds", "1", "--lrs", "1e-4", "--batch-sizes", "2",
            "--epochs", "1"]

    def rows_by_task(run, skip=0):
        assert run.returncode == 3, run.stderr[-3000:]   # some jobs failed, the others ran
        table = pq.read_table(root / "results" / "results.parquet").to_pylist()[skip:]
        return {r["task"]: r for r in table}, skip + len(table)

    rows, seen = rows_by_task(roberta(*args))
    assert rows["stsb"]["value"] is None and "'nan' is not a score" in rows["stsb"]["error"]
    assert rows["squad2"]["value"] is None and "no examples" in rows["squad2"]["error"]
    assert rows["sst2"]["value"] is not None and rows["mrpc"]["value"] is not None

    jobs = root / "results" / "jobs"
    stale_sst2 = list((jobs / "sst2").glob("*.json"))
    [mrpc_job] = list((jobs / "mrpc").glob("*.json"))
    write_glue_fixture(data, "stsb")                                    # fixed
    sst2_dev = data / "SST-2" / "dev.tsv"
    sst2_dev.write_text("\n".join(sst2_dev.read_text().splitlines()[:-1]) + "\n")  # changed
    mrpc_job.write_text(mrpc_job.read_text()[:40])                      # truncated
    run = roberta("--verbose", *args)                                   # shows the warnings
    rows, _ = rows_by_task(run, seen)
    latest, _ = rows_by_task(run)   # MRPC's rerun gives the stored result: no repeated row
    assert rows["stsb"]["value"] is not None and rows["squad2"]["error"]
    assert rows["sst2"]["value"] is not None and latest["mrpc"]["value"] is not None
    assert len(list((jobs / "sst2").glob("*.json"))) == len(stale_sst2) + 1  # rerun on new data
    assert json.loads(mrpc_job.read_text())["best"]                     # rerun and stored again
    assert f"ignoring unreadable cached job {mrpc_job}" in run.stdout + run.stderr


def test_synthetic_data_dir_and_a_rerun_on_cached_jobs(tmp_path):
    root = tmp_path / "run"
    checkpoint = pretrain_style_checkpoint(root, "demo", 20)
    args = ["finetune-eval", "--root", str(root), "--data-dir", "synthetic", "--seeds", "1",
            "--lrs", "1e-3", "--batch-sizes", "8", "--epochs", "1", "--limit", "40"]
    run = roberta(*args)
    assert run.returncode == 0, run.stderr[-3000:]
    table = pq.read_table(root / "results" / "results.parquet").to_pylist()
    assert sorted((r["task"], r["metric"]) for r in table) == [
        ("squad1", "exact"), ("squad1", "f1"), ("sst2", "accuracy")]
    assert all(r["checkpoint"] == str(checkpoint.resolve()) and r["error"] is None
               for r in table)
    assert all(r["standin"] and r["train_limit"] == 40 and r["n_train"] == 40 for r in table)
    assert {r["task"]: r["n_dev"] for r in table} == {"sst2": 100, "squad1": 50}  # whole
    assert (root / "eval-data" / "SST-2" / "train.tsv").exists()
    assert "On generated stand-in tasks: not comparable with the paper" in run.stdout

    # `make demo` twice: every job is cached, and the same evaluation run from another
    # directory, with another spelling of the paths, is the same rows
    (tmp_path / "elsewhere").mkdir()
    again = roberta(*args[:2], "../run/./", *args[3:], "--checkpoint", "../run/pretrain/demo/"
                    "checkpoints/../checkpoints/step-00000020", cwd=tmp_path / "elsewhere")
    assert again.returncode == 0, again.stderr[-3000:]
    assert pq.read_table(root / "results" / "results.parquet").to_pylist() == table
    assert "no rows appended" in again.stdout
