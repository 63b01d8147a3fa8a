"""The trend over pretraining: per task, the score against checkpoint step across the results
history, one series per run and data (stand-ins apart), as rows, a plot and
`roberta results --trend`."""
import os
import subprocess
import sys

from evaluation.aggregate import aggregate
from evaluation.results import append_results, read_results
from evaluation.trend import plot_trend, trend_rows

CK = "/runs/x/pretrain/tiny/checkpoints/step-{:08d}"


def _job(step: int, accuracy: float, fp: str = "a" * 64, standin: bool = False,
         task: str = "rte", seed: int = 1) -> dict:
    return {"task": task, "model_dir": CK.format(step), "lr": 1e-5, "batch_size": 16,
            "seed": seed, "epochs": 10, "history": [], "best_epoch": 1,
            "best": {"accuracy": accuracy}, "time_s": 1.0, "error": None,
            "data": "/data/glue", "data_fingerprint": fp, "standin": standin, "n_train": 100,
            "n_dev": {"dev": 277}}


def _history(root) -> None:
    for step, acc in ((300, 52.0), (100, 50.0), (200, 55.5)):      # evaluated out of order
        append_results(root, aggregate([_job(step, acc)]), model="tiny")
    append_results(root, aggregate([_job(200, 57.0, seed=2), _job(200, 56.0)]), model="tiny")
    append_results(root, aggregate([_job(100, 97.0, fp="s" * 64, standin=True, task="sst2")]),
                   model="tiny")
    append_results(root, aggregate([_job(300, 51.0, fp="b" * 64)]), model="tiny")  # other data


def test_trend_per_task_run_and_data(tmp_path):
    _history(tmp_path)
    rows = trend_rows(read_results(tmp_path))
    rte = [(r["step"], r["value"], r["change"]) for r in rows
           if r["task"] == "rte" and r["series"] == "tiny · glue aaaaaa"]
    assert rte == [(100, 50.0, None), (200, 56.5, 6.5), (300, 52.0, -4.5)]   # newest per step
    other = [(r["step"], r["value"]) for r in rows if r["series"] == "tiny · glue bbbbbb"]
    assert other == [(300, 51.0)]                       # other data: another series
    assert [(r["task"], r["series"]) for r in rows if r["task"] == "sst2"] == [
        ("sst2", "tiny · stand-in")]
    png = plot_trend(read_results(tmp_path))
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "results" / "trend.png").read_bytes() == png   # written on every append


def test_roberta_results_trend(tmp_path):
    _history(tmp_path)
    run = subprocess.run([sys.executable, "-m", "flows.cli", "results", "--root", str(tmp_path),
                          "--trend"], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "COLUMNS": "80"})
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert max(len(line) for line in lines if not line.startswith("plot: ")) <= 80
    assert any("rte" in line and "200" in line and "56.5" in line and "+6.5" in line
               for line in lines)
    assert any("300" in line and "52.0" in line and "-4.5" in line for line in lines)
    assert f"plot: {tmp_path / 'results' / 'trend.png'}" in run.stdout

    empty = tmp_path / "other"
    append_results(empty, aggregate([dict(_job(1, 50.0), model_dir="/models/roberta-base")]))
    run = subprocess.run([sys.executable, "-m", "flows.cli", "results", "--root", str(empty),
                          "--trend"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and "no pretraining checkpoint has results yet" in run.stdout
