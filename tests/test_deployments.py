"""What a user does: a real Prefect server (SQLite) on loopback and a process worker,
`prefect deploy --all`, then `prefect deployment run build-corpus/sample --watch` and the rest
of the sample chain up to `pretrain/tiny`, whose parameter is a whole PretrainConfig."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow
PREFECT = str(Path(sys.executable).with_name("prefect"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture
def prefect_server(tmp_path):
    port = free_port()
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect-home"),
           "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_SERVER_UI_ENABLED": "false"}
    logs = tmp_path / "logs"
    logs.mkdir()
    procs = []
    try:
        procs.append(subprocess.Popen(
            [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env, stdout=open(logs / "server.log", "w"), stderr=subprocess.STDOUT,
            start_new_session=True))
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2)
                break
            except OSError:
                if time.time() > deadline or procs[0].poll() is not None:
                    raise RuntimeError("prefect server did not start:\n" +
                                       (logs / "server.log").read_text()[-3000:])
                time.sleep(1)
        subprocess.run([PREFECT, "work-pool", "create", "local-process", "--type", "process"],
                       env=env, check=True, capture_output=True, timeout=60)
        procs.append(subprocess.Popen(
            [PREFECT, "worker", "start", "--pool", "local-process", "--type", "process"],
            env=env, cwd=REPO, stdout=open(logs / "worker.log", "w"),
            stderr=subprocess.STDOUT, start_new_session=True))
        yield env
    finally:
        for proc in reversed(procs):  # both stop, even when the test failed
            stop(proc)


def test_deploy_all_and_run_build_corpus_sample(prefect_server, tmp_path):
    env = prefect_server
    deploy = subprocess.run([PREFECT, "--no-prompt", "deploy", "--all"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=300)
    assert deploy.returncode == 0, deploy.stdout[-3000:] + deploy.stderr[-3000:]
    api = env["PREFECT_API_URL"]
    chains = {"runs/sample": ("build-corpus/sample", "train-tokenizer/sample",
                              "shard-corpus/sample", "pretrain/tiny"),
              "runs/default": ("build-corpus/cc-news", "train-tokenizer/default",
                               "shard-corpus/default", "pretrain/base", "finetune-eval/nightly")}
    names = (*chains["runs/sample"], *chains["runs/default"], "pipeline/sample")
    deployments = {}
    for name in names:
        with urllib.request.urlopen(f"{api}/deployments/name/{name}", timeout=10) as resp:
            deployments[name] = json.load(resp)
        assert deployments[name]["work_pool_name"] == "local-process", name
    schedules = deployments["finetune-eval/nightly"]["schedules"]
    assert [s["schedule"]["cron"] for s in schedules] == ["0 2 * * *"]
    assert schedules[0]["schedule"]["timezone"] == "UTC"
    assert deployments["pretrain/base"]["parameters"]["config"]["model"] == "base"
    for root, chain in chains.items():   # each stage reads what the one before wrote
        assert {run_root(deployments[n]["parameters"]) for n in chain} == {root}, chain
    sample = deployments["pipeline/sample"]["parameters"]
    assert sample["pretrain_config"]["root"] == sample["root"]

    root = tmp_path / "run"
    run = deployment_run(env, "build-corpus/sample", "--param", f"root={root}",
                         "--param", "runner=threads")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "Completed" in run.stdout
    report = json.loads((root / "corpus" / "dedup_report.json").read_text())
    rows = sum(pq.read_metadata(p).num_rows
               for p in (root / "corpus" / "documents").glob("part-*.parquet"))
    assert rows == report["counts"]["documents_kept"] > 50

    # The rest of the sample chain on that root; pretrain's parameter is a whole
    # PretrainConfig, sent as JSON through the server and rebuilt by the flow.
    for name in ("train-tokenizer/sample", "shard-corpus/sample"):
        run = deployment_run(env, name, "--param", f"root={root}")
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    config = {"root": str(root), "model": "tiny", "run": "tiny", "steps": 4, "batch_size": 8,
              "checkpoint_every": 2, "valid_every": 2}
    run = deployment_run(env, "pretrain/tiny", "--param", f"config={json.dumps(config)}",
                         "--param", "use_ray=false")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "Completed" in run.stdout
    checkpoint = root / "pretrain" / "tiny" / "checkpoints" / "step-00000004"
    assert json.loads((checkpoint / "checkpoint.json").read_text())["step"] == 4
    saved = json.loads((checkpoint / "pretrain_config.json").read_text())
    assert {k: saved[k] for k in config} == config


def run_root(parameters: dict) -> str:
    """A deployment's run root: its `root`, or its PretrainConfig's (pretrain)."""
    return parameters["root"] if "root" in parameters else parameters["config"]["root"]


def deployment_run(env: dict, name: str, *params: str) -> subprocess.CompletedProcess:
    return subprocess.run([PREFECT, "deployment", "run", name, *params, "--watch"], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=600)
