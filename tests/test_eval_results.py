"""aggregate(): median over seeds of the best dev epoch, best (lr, batch); the results table:
appended never overwritten, csv/md/png regenerated, failed jobs as rows with their error."""
import json

import pyarrow.parquet as pq

from evaluation.aggregate import aggregate
from evaluation.results import (append_results, checkpoint_step, evaluated_checkpoints, paths,
                                read_results)


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
    assert (tmp_path / "results" / "trend.png").read_bytes()[:4] == b"\x89PNG"

    from rich.console import Console

    from evaluation.results import print_results
    console = Console(record=True, width=200)
    print_results(tmp_path, console=console)
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


def _on(job: dict, data="/data/glue", fp="f" * 64, standin=False, model_dir=None, **more):
    """`job` as the flow hands it to aggregate: with its data's provenance and sizes."""
    out = dict(job, data=data, data_fingerprint=fp, standin=standin, n_train=3,
               n_dev={"dev": 40}, limit=3, dev_limit=None, **more)
    if model_dir is not None:
        out["model_dir"] = model_dir
    return out


def test_every_row_says_what_it_was_measured_on(tmp_path):
    jobs = [_on(_job(1e-5, 16, s, 80 + s), predictions={"dir": f"/p/{s}", "files": []})
            for s in (1, 2)]
    append_results(tmp_path, aggregate(jobs), model="tiny")
    row = read_results(tmp_path).to_pylist()[0]
    assert (row["data"], row["data_fingerprint"], row["standin"]) == ("/data/glue", "f" * 64, False)
    assert (row["n_train"], row["n_dev"], row["train_limit"], row["dev_limit"]) == (3, 40, 3, None)
    assert json.loads(row["predictions"]) == {"1": "/p/1", "2": "/p/2"}
    md = (tmp_path / "results" / "results.md").read_text()
    assert "| train ≤ 3 |" in md and "/data/glue" in md and "ffffffffffff" in md


def test_a_table_written_before_the_provenance_columns_still_reads(tmp_path):
    old_columns = [n for n in read_results(tmp_path).schema.names
                   if n not in ("data", "data_fingerprint", "standin", "n_train", "n_dev",
                                "train_limit", "dev_limit", "predictions")]
    append_results(tmp_path, aggregate([_job(1e-5, 16, 1, 80)]), model="old")
    path = tmp_path / "results" / "results.parquet"
    pq.write_table(pq.read_table(path).select(old_columns), path)
    assert read_results(tmp_path).to_pylist()[0]["data"] is None
    table = append_results(tmp_path, aggregate([_on(_job(1e-5, 16, 1, 81))]), model="new")
    assert [r["model"] for r in table.to_pylist()] == ["old", "old", "new", "new"]  # acc, f1


def test_the_same_evaluation_from_anywhere_adds_no_row(tmp_path, monkeypatch):
    (tmp_path / "ck" / "step-100").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "ck")
    jobs = [_on(_job(1e-5, 16, s, 80 + s), data="glue") for s in (1, 2)]
    monkeypatch.chdir(tmp_path)
    first = append_results("run", aggregate([dict(j, model_dir="ck/step-100") for j in jobs]))
    assert first.num_rows == 2
    assert first.to_pylist()[0]["checkpoint"] == str(tmp_path / "ck" / "step-100")
    assert first.to_pylist()[0]["data"] == str(tmp_path / "glue")
    monkeypatch.chdir(tmp_path / "elsewhere")
    for spelling in (str(tmp_path / "ck" / "step-100"), "../ck/./step-100/",
                     "../link/step-100"):
        again = [dict(j, model_dir=spelling, data=str(tmp_path / "glue")) for j in jobs]
        assert append_results(tmp_path / "run", aggregate(again)).num_rows == 2, spelling


def test_stand_in_rows_are_never_beside_the_paper(tmp_path):
    from rich.console import Console

    from evaluation.results import print_results
    from evaluation.results_view import STANDIN_TITLE

    append_results(tmp_path, aggregate([_on(_job(1e-5, 16, 1, 99.0, task="rte"),
                                            standin=True, fp="s" * 64)]), model="tiny")
    append_results(tmp_path, aggregate([_on(_job(1e-5, 16, 1, 61.0, task="rte"))]), model="tiny")
    md = (tmp_path / "results" / "results.md").read_text()
    real, standin = md.split(f"## {STANDIN_TITLE}")
    assert "| 61.0 | 78.7 | 86.6 |" in real and "99.0" not in real
    assert "paper" not in standin.split("\n\nValues")[0].split("|---")[0]   # no paper columns
    assert "| 99.0 |" in standin and "78.7" not in standin.split("Values in percent")[0]
    console = Console(record=True, width=200)
    print_results(tmp_path, console=console)
    text = console.export_text()
    assert text.index("61.0") < text.index(STANDIN_TITLE) < text.index("99.0")
    assert "78.7" not in text[text.index(STANDIN_TITLE):]


def test_the_terminal_table_fits_80_columns_and_says_where_the_rest_is(tmp_path):
    from rich.console import Console

    from evaluation.results import print_results

    jobs = [_on(_job(1e-5, 16, s, 80 + s)) for s in (1, 2, 3)]
    failed = _on(_job(3e-5, 16, 9, 0, task="rte", error="DataFormatError: /a/long/path/to/"
                      "the/data/RTE/train.tsv:12: field 'label': label 'x' not in [...]"))
    append_results(tmp_path, aggregate(jobs + [failed]), model="tiny-run")
    narrow = Console(record=True, width=80)
    print_results(tmp_path, console=narrow)
    text = narrow.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "Left out at this width:" in text
    assert str(paths(tmp_path)["md"]) in text.replace("\n", "")   # a long path wraps
    assert "value" in text and "82.0" in text and "mrpc" in text
    assert "field 'label'" in text.replace("\n", "")              # wrapped, not cut
    wide = Console(record=True, width=300)
    print_results(tmp_path, console=wide)
    text = wide.export_text()
    assert "Left out" not in text and "train ≤ 3" in text


def test_evaluated_means_on_exactly_this_data(tmp_path):
    rte, sst2 = "r" * 64, "s" * 64
    data = {"rte": rte, "sst2": sst2}
    ck = "/runs/x/pretrain/tiny/checkpoints/step-300"
    standin = _on(_job(1e-5, 16, 1, 99, task="sst2"), fp="z" * 64, standin=True, model_dir=ck)
    append_results(tmp_path, aggregate([standin]))
    assert evaluated_checkpoints(tmp_path, data) == set()       # stand-in results do not count
    append_results(tmp_path, aggregate([_on(_job(1e-5, 16, 1, 60, task="rte"), fp=rte,
                                            model_dir=ck)]))
    assert evaluated_checkpoints(tmp_path, data) == set()       # sst2 is still missing
    assert evaluated_checkpoints(tmp_path, {"rte": rte}) == {ck}
    append_results(tmp_path, aggregate([_on(_job(1e-5, 16, 1, 0, task="sst2", error="Boom"),
                                            fp=sst2, model_dir=ck)]))
    assert evaluated_checkpoints(tmp_path, data) == set()       # a failed job is not a result
    append_results(tmp_path, aggregate([_on(_job(1e-5, 16, 1, 91, task="sst2"), fp=sst2,
                                            model_dir=ck)]))
    assert evaluated_checkpoints(tmp_path, data) == {ck}
    assert evaluated_checkpoints(tmp_path, {"rte": "other-copy-of-rte"}) == set()
