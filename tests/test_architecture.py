"""The layering DESIGN.md asks for, checked on the source: no import circle among the project's
packages, libraries that never import Prefect or the flows, a training core and a base package
that need nothing a bare GPU box lacks, and atomic writes in one place."""
import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("runroot", "corpus", "training", "evaluation", "flows")
LIBRARIES = ("runroot", "corpus", "training", "evaluation")
# The training core runs on a bare GPU box: torch, numpy, pyarrow, safetensors and our own
# base and training modules. Ray Train is a launcher around it (ray_launcher, ray_data).
CORE_ALLOWED = {"torch", "numpy", "pyarrow", "safetensors", "runroot", "training"}
PLOTTING = {"matplotlib"}   # imported inside the plot functions only, which the loop never calls
RAY_MODULES = {"training.ray_launcher", "training.ray_data"}
# Sinks the launcher and the flow hang around the loop (`on_metrics`); the core never imports
# them, so it trains without their packages (tensorboardX).
SINKS = {"training.tensorboard_log"}


def _modules() -> dict[str, Path]:
    found = {}
    for pkg in PACKAGES:
        for path in (REPO / pkg).rglob("*.py"):
            name = ".".join(path.relative_to(REPO).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def _imports(path: Path, top_level_only: bool = False) -> set[str]:
    """Every module name `path` imports, at the top or (by default) inside a function."""
    out = set()
    tree = ast.parse(path.read_text())
    for node in tree.body if top_level_only else ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        edges = set()
        for imported in _imports(path):
            while imported and imported not in modules:   # `pkg.mod.func` -> `pkg.mod`
                imported = imported.rpartition(".")[0]
            if imported and imported != name:
                edges.add(imported)
        graph[name] = edges
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    cycles, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    return cycles


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circle():
    cycles = find_cycles(_graph())
    assert not cycles, "import circles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_libraries_never_import_prefect_or_flows():
    breaks = [f"{name} imports {imp}" for name, path in _modules().items()
              if name.split(".")[0] in LIBRARIES
              for imp in _imports(path) if imp.split(".")[0] in ("prefect", "prefect_ray", "flows")]
    assert not breaks, breaks


def test_base_package_imports_nothing_heavier_than_pyarrow():
    breaks = [f"{name} imports {imp}" for name, path in _modules().items()
              if name.split(".")[0] == "runroot"
              for imp in _imports(path)
              if imp.split(".")[0] not in ("pyarrow", "runroot")
              and imp.split(".")[0] not in _stdlib()]
    assert not breaks, breaks


def test_training_core_needs_only_torch_numpy_pyarrow_safetensors():
    def allowed(imp: str, top_level: bool) -> bool:
        root = imp.split(".")[0]
        return root in CORE_ALLOWED or root in _stdlib() or (root in PLOTTING and not top_level)

    outside = RAY_MODULES | SINKS
    core = {name: path for name, path in _modules().items()
            if name.startswith("training.") and name not in outside}
    breaks = [f"{name} imports {imp}" for name, path in core.items()
              for imp in _imports(path) if not allowed(imp, imp in _imports(path, True))
              or imp in outside or imp.rpartition(".")[0] in outside]
    assert not breaks, breaks


def test_temp_then_rename_only_in_storage_and_checkpoints():
    """Atomic writes go through runroot.storage; the multi-rank checkpoint directory is the one
    other place (its ranks write into one temporary folder between barriers)."""
    allowed = {"runroot.storage", "training.checkpoint"}
    renames = []
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("rename", "move")
                    or isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "replace" and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == "os"):
                if name not in allowed:
                    renames.append(f"{name}:{node.lineno}")
    assert not renames, renames


def _stdlib() -> frozenset[str]:
    import sys

    return frozenset(sys.stdlib_module_names) | {"__future__"}


def test_config_check_and_ray_driver_import_no_torch():
    """The CLI's pre-check (flows/pretrain.py:check_inputs) and the Ray driver need no torch:
    only the workers train."""
    import subprocess
    import sys

    code = ("import sys, flows.pretrain, flows.cli, training.ray_launcher; "
            "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if 'torch' in m)[:5]")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
