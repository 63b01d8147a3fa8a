"""The GPU benchmark must run on a bare box: smoke-run it on CPU, and check the training core
and the script import nothing beyond torch, numpy, pyarrow, safetensors (+ transformers)."""
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "bench" / "bench_train_gpu.py"

FORBIDDEN = ("prefect", "ray", "datasketch", "flows", "corpus", "evaluation", "pandas", "fsspec")


def test_training_core_imports_only_allowed_packages():
    code = (
        "import sys, importlib\n"
        f"forbidden = {FORBIDDEN!r}\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in forbidden:\n"
        "            raise ImportError('forbidden import: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "for m in ('config', 'model', 'masking', 'optim', 'step', 'hf_io'):\n"
        "    importlib.import_module('training.' + m)\n"
        "import runpy; sys.argv = ['x', '--help']\n"
        "try:\n"
        f"    runpy.run_path({str(SCRIPT)!r}, run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('OK')\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and "OK" in r.stdout, r.stderr[-3000:]
    assert (REPO / "training" / "__init__.py").read_text().strip() == ""


def test_gpu_bench_smoke_on_cpu(tmp_path):
    out = tmp_path / "gpu.json"
    r = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--out", str(out)], cwd=REPO,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads(out.read_text())
    v = res["variants"]
    for name in ("matmul_peak", "check_bf16_vs_fp32", "check_hf_export", "hf_sdpa", "ours_eager"):
        assert v[name]["status"] == "ok", (name, v[name])
    assert v["check_bf16_vs_fp32"]["pass"] and v["check_hf_export"]["pass"]
    assert v["ours_eager"]["tokens_per_s"] > 0 and v["ours_eager"]["skipped_steps"] == 0
    assert res["summary"]["speedup_vs_hf_sdpa"]["ours_eager"] > 0
    assert abs(json.loads(out.read_text())["flops_per_token"] - res["flops_per_token"]) == 0


def test_gpu_bench_isolated_compiled_variant(tmp_path):
    """The subprocess-per-variant path, and our compiled step (fullgraph-able, CPU inductor)."""
    out = tmp_path / "gpu.json"
    r = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--isolate", "--variants",
                        "ours_compile,not_a_variant"], cwd=REPO, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode != 0 and "unknown variant" in r.stderr
    r = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--isolate", "--variants",
                        "ours_compile", "--out", str(out)], cwd=REPO, capture_output=True,
                       text=True, timeout=400)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads(out.read_text())["variants"]["ours_compile"]
    assert res["status"] == "ok", res
    assert res["tokens_per_s"] > 0
