"""aggregate(): median over seeds of the best dev epoch, best (lr, batch); the results table:
appended never overwritten, csv/md/png regenerated, failed jobs as rows with their error."""
import json

import pyarrow.parquet as pq

from evaluation.aggregate import aggregate
from evaluation.results import (append_results, checkpoint_step, evaluated_checkpoints, paths,
                                read_results, render_table)


def _job(lr, bs, seed, best_acc, f1=50.0, task="mrpc", error=None):
    hist = [{"epoch": 1, "accuracy": best_acc - 5, "f1": f1 - 5},
            {"epoch": 2, "accuracy": best_acc, "f1": f1},
            {"epoch": 3, "accuracy": best_acc - 1, "f1": f1 + 10}]
    if error:
        return {"task": task, "model_dir": "/ck/step-100", "lr": lr, "batch_size": bs,
                "seed": seed, "error": error, "best": {}, "history": [], "time_s": 1.0}
    return {"task": task, "model_dir": "/ck/step-100", "lr": lr, "batch_size": bs, "seed": seed,
            "epochs": 10, "warmup_ratio": 0.06, "weight_decay": 0.1, "max_len": 512,
            "history": hist, "best_epoch": 2, "best": {"accuracy": best_acc, "f1": f1},
            "time_s": 2.0, "error": None}


def test_aggregate_median_of_best_epoch_and_best_config():
    jobs = ([_job(1e-5, 16, s, a) for s, a in zip(range(1, 6), [80, 90, 85, 70, 88])]   # median 85
            + [_job(2e-5, 32, s, a, f1=60 + s) for s, a in zip(range(1, 6), [86, 87, 60, 86.5, 99])]  # 86.5
            + [_job(3e-5, 16, 1, 0, error="RuntimeError: CUDA OOM")])
    rows = aggregate(jobs)
    good = {r["metric"]: r for r in rows if r["error"] is None}
    failed = [r for r in rows if r["error"]]
    assert good["accuracy"]["value"] == 86.5
    assert (good["accuracy"]["lr"], good["accuracy"]["batch_size"]) == (2e-5, 32)
    assert good["accuracy"]["seeds"] == [1, 2, 3, 4, 5] and good["accuracy"]["n_seeds"] == 5
    assert good["f1"]["value"] == 63                  # median of f1 at the same best epochs
    assert good["accuracy"]["paper_base"] == 90.2 and good["accuracy"]["paper_large"] == 90.9
    assert good["f1"]["paper_base"] is None and good["accuracy"]["failed_jobs"] == 1
    assert json.loads(good["accuracy"]["hyperparameters"])["weight_decay"] == 0.1
    assert len(failed) == 1 and failed[0]["value"] is None and "OOM" in failed[0]["error"]
    assert failed[0]["seeds"] == [1] and failed[0]["lr"] == 3e-5


def test_aggregate_all_failed_task():
    rows = aggregate([_job(1e-5, 16, 1, 0, task="rte", error="ValueError: bad data")])
    assert len(rows) == 1 and rows[0]["value"] is None and rows[0]["task"] == "rte"


def test_aggregate_never_chooses_a_non_finite_score():
    nan = _job(1e-5, 16, 1, float("nan"))        # one diverged seed must not win the choice
    rows = aggregate([nan, _job(2e-5, 16, 1, 88), _job(2e-5, 16, 2, 89),
                      _job(3e-5, 16, 1, float("inf"))])
    good = {r["metric"]: r for r in rows if r["error"] is None}
    assert (good["accuracy"]["value"], good["accuracy"]["lr"]) == (88.5, 2e-5)
    assert good["accuracy"]["failed_jobs"] == 2
    failed = sorted((r["lr"], r["error"]) for r in rows if r["error"])
    assert failed == [(1e-5, "non-finite score {'accuracy': nan}"),
                      (3e-5, "non-finite score {'accuracy': inf}")]


def test_results_table_appends_and_reports(tmp_path):
    rows = aggregate([_job(1e-5, 16, s, 80 + s) for s in (1, 2, 3)]
                     + [_job(1e-5, 16, 9, 0, task="rte", error="KeyError: 'x'")])
    t1 = append_results(tmp_path, rows, model="tiny-run")
    assert t1.num_rows == 3
    p = paths(tmp_path)
    first = pq.read_table(p["parquet"]).to_pylist()
    assert first[0]["checkpoint_step"] == 100 and first[0]["model"] == "tiny-run"
    assert first[0]["paper_large"] == 90.9 and first[0]["seeds"] == "1,2,3"
    assert json.loads(first[0]["per_seed"]) == {"1": 81, "2": 82, "3": 83}
    assert any(r["error"] == "KeyError: 'x'" and r["value"] is None for r in first)

    t2 = append_results(tmp_path, aggregate([_job(2e-5, 32, 1, 91)]), model="tiny-run", step=200)
    assert t2.num_rows == 5
    assert read_results(tmp_path).slice(0, 3).to_pylist() == first          # old rows intact
    assert read_results(tmp_path).to_pylist()[-1]["checkpoint_step"] == 200
    for ext in ("csv", "md", "png"):
        assert (tmp_path / "results" / f"results.{ext}").stat().st_size > 0
    assert (tmp_path / "results" / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (tmp_path / "results" / "results.md").read_text()
    assert md.count("\n| tiny-run") == 5 and "90.9" in md
    assert len((tmp_path / "results" / "results.csv").read_text().splitlines()) == 6
    assert not [f for f in (tmp_path / "results").iterdir() if f.name.startswith(".tmp")]
    assert evaluated_checkpoints(tmp_path) == {"/ck/step-100"}

    from rich.console import Console
    console = Console(record=True, width=200)
    console.print(render_table(tmp_path))
    text = console.export_text()
    assert "mrpc" in text and "KeyError" in text


def test_empty_table_and_step_parsing(tmp_path):
    assert read_results(tmp_path).num_rows == 0
    assert checkpoint_step("/r/pretrain/run/checkpoints/step-12000") == 12000
    assert checkpoint_step("roberta-base") is None


def test_a_rerun_on_cached_jobs_appends_no_repeated_rows(tmp_path):
    jobs = [_job(1e-5, 16, s, 80 + s) for s in (1, 2, 3)]
    failed = _job(1e-5, 16, 9, 0, task="rte", error="KeyError: 'x'")
    first = append_results(tmp_path, aggregate(jobs + [failed]), model="tiny-run")
    assert first.num_rows == 3
    slower = [dict(j, time_s=9.0) for j in jobs]          # the same results, timed again
    again = append_results(tmp_path, aggregate(slower + [failed]), model="tiny-run")
    assert again.num_rows == 4                            # only the failed job's retry
    assert [r["task"] for r in again.to_pylist()[3:]] == ["rte"]
    assert again.slice(0, 3).to_pylist() == first.slice(0, 3).to_pylist()
    assert (tmp_path / "results" / "results.md").read_text().count("\n| tiny-run") == 4

    changed = append_results(tmp_path, aggregate([_job(1e-5, 16, 1, 95)]), model="tiny-run")
    assert changed.num_rows == 6                          # a new result is history: appended
    other = append_results(tmp_path, aggregate(jobs), model="tiny-run", step=200)
    assert other.num_rows == 8                            # the same scores of another step too
