"""The nightly evaluation as a team sets it up: a real Prefect server on loopback and a process
worker, `prefect deploy --all`, the task data configured once on the server (the Prefect
Variable roberta_nightly_eval, as the README says), then `finetune-eval/nightly` runs:
Completed with "nothing to evaluate" before any checkpoint exists; Failed, naming the
Variable, when a checkpoint waits but the configured data is not there; and, configured right,
the checkpoint evaluated on RTE (the real files where the workspace has them), its rows saying
so, and the trend artifact showing its step; then nothing left to evaluate."""
import json
import re
import subprocess
import urllib.request

import pyarrow.parquet as pq
import pytest

from evaluation.job_cache import data_fingerprint
from tests.conftest import REPO
from tests.fixtures_eval import dev_rows, pretrain_style_checkpoint, rte_data
# The deployment tests' real server and worker (a fixture), and their way of running a deployment.
from tests.test_deployments import PREFECT, deployment_run, prefect_server  # noqa: F401

pytestmark = pytest.mark.slow
VARIABLE = "roberta_nightly_eval"


def api(env: dict, path: str, body: dict | None = None):
    request = urllib.request.Request(
        env["PREFECT_API_URL"] + path, method="POST" if body is not None else "GET",
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as resp:
        return json.load(resp)


def nightly(env: dict, root, *params: str) -> tuple[subprocess.CompletedProcess, dict]:
    """Run finetune-eval/nightly and wait for it: the command and the run's final state."""
    run = deployment_run(env, "finetune-eval/nightly", "--param", f"root={root}", *params)
    flow_run_id = re.search(r"UUID: ([0-9a-f-]{36})", run.stdout).group(1)
    return run, api(env, f"/flow_runs/{flow_run_id}")["state"]


def configure(env: dict, value: dict) -> None:
    subprocess.run([PREFECT, "variable", "set", VARIABLE, json.dumps(value), "--overwrite"],
                   env=env, check=True, capture_output=True, timeout=60)


def latest_artifact(env: dict, key: str) -> dict:
    [artifact] = api(env, "/artifacts/filter", {"artifacts": {"key": {"any_": [key]}},
                                                 "sort": "CREATED_DESC", "limit": 1})
    return artifact


def test_nightly_evaluates_new_checkpoints_on_the_configured_data(prefect_server,  # noqa: F811
                                                                  tmp_path):
    env = prefect_server
    deploy = subprocess.run([PREFECT, "--no-prompt", "deploy", "--all"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=300)
    assert deploy.returncode == 0, deploy.stdout[-3000:] + deploy.stderr[-3000:]
    root, data = tmp_path / "run", rte_data(tmp_path / "glue")
    configure(env, {"data_dir": str(data), "tasks": "rte"})
    sweep = ("--param", "seeds=[1]", "--param", "lrs=[0.001]", "--param", "batch_sizes=[16]",
             "--param", "epochs=1", "--param", "limit=200")

    run, state = nightly(env, root, *sweep)
    assert run.returncode == 0, run.stdout[-3000:]
    assert state["type"] == "COMPLETED", state
    assert state["message"] == f"nothing to evaluate: no pretrain checkpoint under {root} yet"

    checkpoint = pretrain_style_checkpoint(root, "tiny", 4, max_positions=128)
    configure(env, {"data_dir": str(tmp_path / "no-such-dir"), "tasks": "rte"})
    run, state = nightly(env, root, *sweep)
    assert run.returncode == 1 and state["type"] == "FAILED", state
    assert f"Prefect Variable '{VARIABLE}'" in state["message"], state["message"]
    assert "no such directory" in state["message"] and "prefect variable set" in state["message"]
    assert not (root / "results").exists()

    configure(env, {"data_dir": str(data), "tasks": "rte"})
    run, state = nightly(env, root, *sweep)
    assert run.returncode == 0 and state["type"] == "COMPLETED", run.stdout[-3000:]
    assert state["message"].startswith(f"evaluated {checkpoint} on {data}"), state["message"]
    [row] = pq.read_table(root / "results" / "results.parquet").to_pylist()
    assert (row["task"], row["checkpoint_step"], row["error"]) == ("rte", 4, None)
    assert (row["data"], row["standin"]) == (str(data), False)
    assert row["data_fingerprint"] == data_fingerprint("rte", data)
    assert (row["n_train"], row["train_limit"], row["n_dev"]) == (200, 200, dev_rows(data))

    trend = latest_artifact(env, "finetune-eval-trend-table")
    points = json.loads(trend["data"]) if isinstance(trend["data"], str) else trend["data"]
    assert [(p["task"], p["step"], p["value"]) for p in points] == [
        ("rte", 4, round(row["value"], 2))]
    assert latest_artifact(env, "finetune-eval-trend")["data"].startswith("data:image/png")

    run, state = nightly(env, root, *sweep)
    assert state["type"] == "COMPLETED", state
    assert state["message"].startswith("nothing to evaluate: every checkpoint"), state
