"""infra/ cannot be deployed here (`ray up` and kubectl need a cloud), so check what can be:
every file parses, has the keys its tool requires, and every `roberta ...` command and path
it names exists in this project."""
import re
import shlex

import pytest
import yaml

from flows.cli import build_parser
from tests.conftest import REPO

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
