"""infra/ cannot be deployed here (`ray up` and kubectl need a cloud), so check what can be:
every file parses, has the keys its tool requires, and every `roberta ...` command and path
it names exists in this project."""
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from flows.cli import build_parser
from tests.conftest import REPO
from tests.listening_sockets import free_port, is_loopback, listeners, process_tree

INFRA = REPO / "infra"


def strings_in(node) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for v in node.values() for s in strings_in(v)]
    if isinstance(node, list):
        return [s for v in node for s in strings_in(v)]
    return []


def roberta_commands(text: str, docs: list) -> list[list[str]]:
    """Every `roberta SUBCOMMAND ...` in a file: in its lines (comments, commands) and in its
    parsed string values (YAML folds multi-line scalars into one line)."""
    candidates = text.splitlines() + [s for d in docs for s in strings_in(d)]
    found = []
    for line in candidates:
        for m in re.finditer(r"\broberta ([a-z-]+)([^\"'\n]*)", line):
            argv = shlex.split(m.group(0))[1:]
            if argv not in found:
                found.append(argv)
    return found


@pytest.mark.parametrize("path", sorted(INFRA.rglob("*.yaml")), ids=lambda p: p.name)
def test_yaml_parses_and_names_real_commands(path):
    docs = list(yaml.safe_load_all(path.read_text()))
    assert docs and all(isinstance(d, dict) for d in docs)
    commands = roberta_commands(path.read_text(), docs)
    assert commands, f"{path.name} should show how to run the pipeline"
    for argv in commands:
        build_parser().parse_args(argv)  # exits (SystemExit) on an unknown option


def test_cluster_launcher_has_head_and_gpu_workers():
    cfg = yaml.safe_load((INFRA / "ray" / "cluster.yaml").read_text())
    for key in ("cluster_name", "provider", "available_node_types", "head_node_type",
                "head_start_ray_commands", "worker_start_ray_commands"):
        assert key in cfg, key
    types = cfg["available_node_types"]
    assert cfg["head_node_type"] in types
    assert any(t.get("resources", {}).get("GPU", 0) > 0 for t in types.values())


def test_kuberay_manifests():
    cluster = yaml.safe_load((INFRA / "kuberay" / "raycluster.yaml").read_text())
    job = yaml.safe_load((INFRA / "kuberay" / "rayjob-pretrain.yaml").read_text())
    assert cluster["apiVersion"] == job["apiVersion"] == "ray.io/v1"
    assert (cluster["kind"], job["kind"]) == ("RayCluster", "RayJob")
    for spec in (cluster["spec"], job["spec"]["rayClusterSpec"]):
        assert spec["headGroupSpec"]["template"]["spec"]["containers"]
        gpus = [g["template"]["spec"]["containers"][0]["resources"]["limits"].get("nvidia.com/gpu")
                for g in spec["workerGroupSpecs"]]
        assert all(gpus)
    assert job["spec"]["entrypoint"].startswith("roberta pretrain")
    # pretrain's root is a filesystem path (checkpoints are local files) mounted on the head
    # and every worker, so it outlives the cluster and all ranks see one run directory
    root = job["spec"]["entrypoint"].split("--root ")[1].split()[0]
    assert "://" not in root
    for spec in (cluster["spec"], job["spec"]["rayClusterSpec"]):
        for group in [spec["headGroupSpec"], *spec["workerGroupSpecs"]]:
            mounts = group["template"]["spec"]["containers"][0].get("volumeMounts", [])
            assert any(root.startswith(m["mountPath"] + "/") for m in mounts), group


def test_clusters_track_train_runs_export_metrics_on_a_fixed_port_and_use_tokens():
    """The Train view needs RAY_TRAIN_ENABLE_STATE_TRACKING in the driver's environment, so
    every container has it (and a RayJob's entrypoint, through its runtime env); Prometheus
    needs a known port; KubeRay makes and distributes the token."""
    tracking = {"name": "RAY_TRAIN_ENABLE_STATE_TRACKING", "value": "1"}
    cluster = yaml.safe_load((INFRA / "kuberay" / "raycluster.yaml").read_text())
    job = yaml.safe_load((INFRA / "kuberay" / "rayjob-pretrain.yaml").read_text())
    assert yaml.safe_load(job["spec"]["runtimeEnvYAML"])["env_vars"][tracking["name"]] == "1"
    for spec in (cluster["spec"], job["spec"]["rayClusterSpec"]):
        assert spec["authOptions"] == {"mode": "token"}
        for group in [spec["headGroupSpec"], *spec["workerGroupSpecs"]]:
            assert group["rayStartParams"]["metrics-export-port"] == "8080"
            container = group["template"]["spec"]["containers"][0]
            assert tracking in container["env"]
            assert {"containerPort": 8080, "name": "metrics"} in container["ports"]
    launcher = yaml.safe_load((INFRA / "ray" / "cluster.yaml").read_text())
    assert "RAY_TRAIN_ENABLE_STATE_TRACKING=1" in launcher["docker"]["run_options"]
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        start = next(c for c in launcher[key] if c.startswith("ray start"))
        assert "--metrics-export-port=8080" in start and "0.0.0.0" not in start
    dockerfile = (INFRA / "Dockerfile").read_text()
    assert "RAY_TRAIN_ENABLE_STATE_TRACKING=1" in dockerfile
    import tomllib

    packages = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"]["find"]["include"]
    for package in packages:      # the image installs the project: every package is copied
        assert f" {package.rstrip('*')} ./{package.rstrip('*')}" in dockerfile, package


def test_pretrain_commands_use_filesystem_roots():
    for path in sorted(INFRA.rglob("*.yaml")):
        text = path.read_text()
        for argv in roberta_commands(text, list(yaml.safe_load_all(text))):
            if argv[0] == "pretrain":
                assert "://" not in argv[argv.index("--root") + 1], (path.name, argv)


def test_dockerfile_copies_paths_that_exist():
    text = (INFRA / "Dockerfile").read_text()
    assert text.startswith("#") and "FROM rayproject/ray" in text
    for line in text.splitlines():
        if line.startswith("COPY"):
            sources = [a for a in line.split()[1:-1] if not a.startswith("--")]
            for src in sources:
                assert (REPO / src).exists(), f"Dockerfile copies missing {src}"



def exported_series() -> set[str]:
    """The Prometheus names of the series pretraining exports (Ray prefixes `ray_`)."""
    from training.ray_launcher import RayMetrics

    return ({f"ray_roberta_pretrain_{k}" for k in RayMetrics.GAUGES}
            | {"ray_roberta_pretrain_tokens_total", "ray_roberta_pretrain_skipped_steps_total"})


def test_grafana_dashboard_queries_the_exported_series():
    """infra/grafana/roberta_pretrain.json: a Grafana dashboard (import it, or drop it beside
    the dashboards Ray generates) whose queries name the series pretraining exports, through
    the same `datasource` variable as Ray's dashboards."""
    board = json.loads((INFRA / "grafana" / "roberta_pretrain.json").read_text())
    assert board["uid"] and board["title"] and board["schemaVersion"] >= 27
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert (variables["datasource"]["type"], variables["datasource"]["query"]) == (
        "datasource", "prometheus")
    panels = board["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    named = set()
    for panel in panels:
        assert panel["datasource"] == "${datasource}" and panel["targets"], panel["title"]
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"}
        for target in panel["targets"]:
            assert target["datasource"] == "${datasource}" and target["refId"]
            named |= set(re.findall(r"\bray_roberta_pretrain_\w+", target["expr"]))
    assert named <= exported_series(), named - exported_series()
    wanted = {"loss", "valid_loss", "tokens_per_s", "mfu", "lr", "grad_norm", "step"}
    assert {f"ray_roberta_pretrain_{k}" for k in wanted} <= named


def test_readme_names_every_exported_series():
    readme = (REPO / "README.md").read_text()
    assert not [name for name in exported_series() if name not in readme]


def cluster_pids(cluster_dir: str) -> list[int]:
    """Running processes whose command line names `cluster_dir`, and their descendants."""
    named = [int(p.parent.name) for p in Path("/proc").glob("[0-9]*/cmdline")
             if _readable(p) and cluster_dir.encode() in p.read_bytes()]
    return sorted({pid for root in named for pid in process_tree(root) if running(pid)})


def _readable(p: Path) -> bool:
    try:
        p.read_bytes()
    except OSError:
        return False
    return True


def running(pid: int) -> bool:
    """Alive and not a zombie (an exited process not yet reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


@pytest.mark.slow
@pytest.mark.timeout(1200)      # above the limits of start, status and stop
def test_local_cluster_script_starts_two_loopback_nodes_and_stops_only_them(tmp_path):
    """infra/ray/local_cluster.sh: `start` brings up a head and a second node (`ray start`,
    their own temp dirs and resources) that listen on 127.0.0.1 only; `stop` ends exactly
    their processes, not another process that merely looks like Ray."""
    cluster_dir = tempfile.mkdtemp(prefix="r15c-")      # short: Ray's socket paths
    env = {k: v for k, v in os.environ.items()
           if k not in ("RAY_ADDRESS", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_TMPDIR")}
    env.update(BIN=str(Path(sys.executable).parent), HOME=str(tmp_path),
               RAY_CLUSTER_DIR=cluster_dir, RAY_HEAD_PORT=str(free_port()),
               RAY_DASHBOARD_PORT=str(free_port()), RAY_CLIENT_PORT=str(free_port()),
               RAY_METRICS_PORTS=f"{free_port()} {free_port()}",
               RAY_AGENT_PORTS=f"{free_port()} {free_port()}")
    script = str(INFRA / "ray" / "local_cluster.sh")
    decoy = subprocess.Popen(["bash", "-c", "exec -a raylet sleep 600"])  # named like Ray's
    nodes: list[int] = []
    try:
        start = subprocess.run([script, "start"], env=env, capture_output=True, text=True,
                               timeout=600)
        assert start.returncode == 0, start.stdout + start.stderr
        assert f"export RAY_ADDRESS=127.0.0.1:{env['RAY_HEAD_PORT']}" in start.stdout
        status = subprocess.run([script, "status"], env=env, capture_output=True, text=True,
                                timeout=300)
        assert status.stdout.count(" node_") == 2, status.stdout
        assert " head_node" in status.stdout and " node2" in status.stdout, status.stdout
        nodes = cluster_pids(cluster_dir)
        exposed = [s for s in listeners(nodes) if not is_loopback(s.host)]
        assert not exposed, exposed
    finally:
        stop = subprocess.run([script, "stop"], env=env, capture_output=True, text=True,
                              timeout=120)
        shutil.rmtree(cluster_dir, ignore_errors=True)
    assert stop.returncode == 0 and stop.stdout.startswith("stopped"), stop.stdout + stop.stderr
    assert len(nodes) > 10 and not [p for p in nodes if running(p)]
    assert decoy.poll() is None, "stop killed a process that is not one of its nodes"
    decoy.kill()
    decoy.wait()
