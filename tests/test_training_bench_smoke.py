"""The GPU benchmark must run on a bare box: smoke-run it on CPU, and check the training core
and the script import nothing beyond torch, numpy, pyarrow, safetensors (+ transformers)."""
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "bench" / "bench_train_gpu.py"

FORBIDDEN = ("prefect", "ray", "datasketch", "flows", "corpus", "evaluation", "pandas", "fsspec")


def run_without_forbidden_imports(script: Path, argv: list[str], modules=()) -> subprocess.CompletedProcess:
    """Import `training.<modules>`, then run `script` with `argv`, with every FORBIDDEN
    package made unimportable: what the GPU image (torch, numpy, pyarrow, safetensors,
    transformers) can run."""
    # A forbidden package has a spec without an origin (torch's probes skip it) whose loader
    # raises ModuleNotFoundError (what pyarrow's optional-pandas import expects).
    code = (
        "import sys, importlib, importlib.abc, importlib.machinery\n"
        f"forbidden = {FORBIDDEN!r}\n"
        "class Absent(importlib.abc.Loader):\n"
        "    def create_module(self, spec):\n"
        "        raise ModuleNotFoundError(f'forbidden import: {spec.name}', name=spec.name)\n"
        "    def exec_module(self, module):\n"
        "        pass\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in forbidden:\n"
        "            return importlib.machinery.ModuleSpec(name, Absent())\n"
        "sys.meta_path.insert(0, Block())\n"
        f"for m in {tuple(modules)!r}:\n"
        "    importlib.import_module('training.' + m)\n"
        f"import runpy; sys.argv = ['x', *{argv!r}]\n"
        "try:\n"
        f"    runpy.run_path({str(script)!r}, run_name='__main__')\n"
        "except SystemExit as e:\n"
        "    if e.code not in (0, None): raise\n"
        "print('OK')\n")
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_training_core_imports_only_allowed_packages():
    r = run_without_forbidden_imports(SCRIPT, ["--help"],
                                      ("config", "model", "linear_cross_entropy", "masking",
                                       "optim", "step", "hf_io"))
    assert r.returncode == 0 and "OK" in r.stdout, r.stderr[-3000:]
    assert (REPO / "training" / "__init__.py").read_text().strip() == ""


def test_real_loop_check_runs_on_a_bare_box(tmp_path):
    # bench/gpu_loop_check.py runs training.loop.train (reader, prefetch, checkpoint, resume)
    # on the device machine, which has no Prefect, Ray or tokenizer-training packages.
    out = tmp_path / "loop.json"
    r = run_without_forbidden_imports(REPO / "bench" / "gpu_loop_check.py",
                                      ["--smoke", "--out", str(out)])
    assert r.returncode == 0 and "OK" in r.stdout, r.stdout[-2000:] + r.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["every_update_once"] and res["losses_finite"]
    assert [p["steps_done"] for p in res["phases"]] == [3, 6]
    assert res["median_tokens_per_s"] > 0 and res["timed_updates"] == 4


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
    assert "profile" not in v["ours_eager"] and not res["config"]["profile"]   # default: off
    assert res["summary"]["speedup_vs_hf_sdpa"]["ours_eager"] > 0
    assert abs(json.loads(out.read_text())["flops_per_token"] - res["flops_per_token"]) == 0


def test_gpu_bench_isolated_compiled_variant(tmp_path):
    """The subprocess-per-variant path, and our compiled step (fullgraph-able, CPU inductor)."""
    out = tmp_path / "gpu.json"
    r = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--isolate", "--variants",
                        "ours_compile,not_a_variant"], cwd=REPO, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode != 0 and "unknown variant" in r.stderr
    # A cache of its own: inductor's shared /tmp cache, half-written by a compile that another
    # process had killed, failed this test with an ImportError from the cached module.
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor")}
    r = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--isolate", "--variants",
                        "ours_compile", "--out", str(out)], cwd=REPO, capture_output=True,
                       text=True, timeout=400, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads(out.read_text())["variants"]["ours_compile"]
    assert res["status"] == "ok", res
    assert res["tokens_per_s"] > 0
    assert res["compiled"] is True     # compile={} (default mode) must still compile


def test_gpu_bench_profile_smoke_on_cpu(tmp_path):
    """--profile on CPU: host-phase timers, CPU-op table and a gzipped chrome trace; the CUDA
    fields are null. The no-feeder variant runs (eager on CPU: CUDA graphs need CUDA)."""
    import gzip
    out = tmp_path / "gpu.json"
    names = ("ours_eager", "ours_compile_cudagraphs_nofeeder")
    r = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--profile", "--variants",
                        ",".join(names), "--out", str(out)], cwd=REPO, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["config"]["profile"] == "all"
    for name in names:
        v = res["variants"][name]
        assert v["status"] == "ok", (name, v)
        p = v["profile"]
        assert p["status"] == "ok", (name, p)
        host = p["host_ms_per_step"]
        for k in ("batch_to_device", "forward", "backward", "sync_tolist", "optimizer_step",
                  "zero_grad", "other", "step_total"):
            assert k in host and host[k]["mean_ms"] >= 0 or k == "other", (name, k, host)
        assert host["forward"]["mean_ms"] > 0 and host["step_total"]["mean_ms"] > 0
        assert p["profiled_steps"] == 2 and p["wall_ms_per_step"] > 0
        assert p["gpu"] is None
        assert p["top_cpu_ops"] and all({"name", "count", "self_cpu_ms"} <= set(o)
                                         for o in p["top_cpu_ops"])
        trace = Path(p["trace"])
        assert trace.name == f"gpu.json.{name}.trace.json.gz" and trace.parent == tmp_path
        assert "traceEvents" in json.loads(gzip.decompress(trace.read_bytes()))
        assert "profile (ms per step)" in r.stdout
    nf = res["variants"]["ours_compile_cudagraphs_nofeeder"]
    assert nf["feeder"].startswith("precomputed") and "compile_note" in nf
    assert nf["tokens_per_s"] > 0 and nf["skipped_steps"] == 0


def _load_bench():
    import importlib.util
    spec = importlib.util.spec_from_file_location("bench_train_gpu", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def test_combined_variant_merges_only_the_knobs_that_won():
    bench = _load_bench()
    a, b = bench.COMBINABLE[:2]
    ok = lambda tps: {"status": "ok", "tokens_per_s": tps}   # noqa: E731
    res = {"variants": {bench.COMBINE_BASE: ok(100.0), a: ok(103.0), b: ok(100.2)}}
    assert bench.combined_knobs(res) == (None, [a])           # one winner: nothing to combine
    res["variants"][b] = ok(102.0)
    knobs, winners = bench.combined_knobs(res)
    assert winners == [a, b]
    assert knobs == {"compile": "cudagraphs", "sdpa": "flash",
                     "inductor": {"force_disable_caches": True, "coordinate_descent_tuning": True}}
    res["variants"][a] = {"status": "error"}
    assert bench.combined_knobs(res) == (None, [b])
    assert bench.combined_knobs({"variants": {}}) == (None, [])


class _Ev:
    def __init__(self, name, t0_ms, t1_ms, at, dev, tid=1):
        self._n, self._a, self._b, self._at, self._dev, self._tid = (
            name, int(t0_ms * 1e6), int(t1_ms * 1e6), at, dev, tid)

    def name(self): return self._n
    def start_ns(self): return self._a
    def end_ns(self): return self._b
    def activity_type(self): return self._at
    def device_type(self): return self._dev
    def is_user_annotation(self): return "annotation" in self._at
    def start_thread_id(self): return self._tid
    def device_resource_id(self): return 7


def test_profile_analysis_on_synthetic_kineto_events():
    """The GPU part of --profile (busy = union of kernel intervals, idle split by host phase,
    categories) cannot run on CPU: check it on hand-made kineto events."""
    import types

    import torch
    bench = _load_bench()
    CPU, CUDA = torch.autograd.DeviceType.CPU, torch.autograd.DeviceType.CUDA
    ev = [
        # two steps of 10 ms; the last step's annotation includes the final sync
        _Ev("bench::step", 0, 10, "user_annotation", CPU),
        _Ev("bench::step", 10, 20, "user_annotation", CPU),
        _Ev("bench::sync_tolist", 5, 6, "user_annotation", CPU),
        _Ev("bench::optimizer_step", 6, 8, "user_annotation", CPU),
        _Ev("bench::sync_tolist", 15, 16, "user_annotation", CPU),
        _Ev("bench::step", 0, 20, "gpu_user_annotation", CUDA),   # must not count as busy
        _Ev("nvjet_tst_128x256_64x4_1x2_h_bz_coopA_NTN", 0, 4, "kernel", CUDA),
        _Ev("pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits>", 3, 5, "kernel", CUDA),
        _Ev("void at::native::multi_tensor_apply_kernel<FusedAdamMathFunctor>", 8, 9,
            "kernel", CUDA),
        _Ev("triton_per_fused_native_layer_norm_0", 10, 15, "kernel", CUDA),
        _Ev("Memcpy HtoD (Pinned -> Device)", 16, 17, "gpu_memcpy", CUDA),
        _Ev("triton_poi_fused_gelu_1", 30, 31, "kernel", CUDA),            # outside the window
    ]
    prof = types.SimpleNamespace(
        profiler=types.SimpleNamespace(kineto_results=types.SimpleNamespace(events=lambda: ev)),
        key_averages=list)
    res = bench._analyse_profile(prof, 2, cuda=True)
    g = res["gpu"]
    assert res["profiled_steps"] == 2 and abs(res["wall_ms_per_step"] - 10) < 1e-9
    # busy: [0,5] + [8,9] + [10,15] + [16,17] = 12 ms of 20 -> 6 ms/step, idle 40 %
    assert abs(g["gpu_busy_ms_per_step"] - 6) < 1e-9
    assert abs(g["kernel_sum_ms_per_step"] - 6.5) < 1e-9
    assert abs(g["gpu_idle_frac"] - 0.4) < 1e-9
    assert g["kernels_per_step"] == 2.5 and g["streams"] == 1
    assert [s["gpu_busy_ms"] for s in g["per_step"]] == [6, 6]
    idle = g["idle_ms_per_step_by_host_phase"]
    # idle [5,8],[9,10],[15,16],[17,20]: sync 5-6 and 15-16 -> 1 ms/step, optimizer 6-8 -> 1
    assert abs(idle["sync_tolist"] - 1) < 1e-9 and abs(idle["optimizer_step"] - 1) < 1e-9
    assert abs(sum(idle.values()) - 4) < 1e-9
    cats = g["categories_ms_per_step"]
    assert abs(cats["gemm/matmul"] - 2) < 1e-9 and abs(cats["flash/attention"] - 1) < 1e-9
    assert abs(cats["optimizer/adam/foreach"] - 0.5) < 1e-9
    assert abs(cats["layernorm/norm"] - 2.5) < 1e-9
    assert abs(cats["copy/memcpy/memset"] - 0.5) < 1e-9
    top = g["top_kernels"]
    assert top[0]["name"].startswith("triton_per_fused_native_layer_norm") and top[0]["count"] == 1
    assert abs(sum(k["pct_gpu_time"] for k in top) - 100) < 1e-6
    gaps = g["top_idle_gaps"]
    assert [round(x["gap_ms"], 9) for x in gaps] == [3, 3, 1, 1]        # largest first
    first = min(gaps[:2], key=lambda x: x["at_ms"])
    assert first["at_ms"] == 5 and first["step"] == 0 and first["host_phase"] in (
        "sync_tolist", "optimizer_step")
    assert first["after_kernel"].startswith("pytorch_flash")
    assert first["before_kernel"].startswith("void at::native::multi_tensor_apply")
