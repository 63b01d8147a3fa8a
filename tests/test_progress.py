"""The CLI's progress board: what each long stage reports becomes a row, whatever reports it
(files the work writes in any process, or StageProgress callbacks in this one)."""
import io
import json

from rich.console import Console

from flows.progress import (InputProgressFile, InputsPoller, JobsPoller, MetricsPoller,
                            ProgressBoard, input_progress, last_metrics, progress_dir)


def board(*pollers) -> ProgressBoard:
    return ProgressBoard(*pollers, interval_s=0.05,
                         console=Console(file=io.StringIO(), width=80))


def test_inputs_rows_follow_progress_files_and_manifests(tmp_path):
    root = tmp_path / "run"
    manifests = root / "corpus" / "manifests"
    manifests.mkdir(parents=True)
    warc = tmp_path / "a.warc.gz"
    warc.write_bytes(b"x" * 1000)
    with progress_dir() as directory:
        with input_progress("a-1234", str(warc), warc) as reporter:
            reporter.record(1, 100, "not_response")
            reporter._written = 0.0                      # not throttled: write now
            reporter.record(2, 400, None)
            poller = InputsPoller("WARC files", str(root), ["a-1234", "b-5678"], "pages",
                                  directory)
            with board(poller) as b:
                b.poll()
                rows = b.rows()
            assert rows["WARC files"] == "0/2 done"
            assert rows["  a.warc.gz"].startswith("2 records, ") and "pages/s" in rows["  a.warc.gz"]
        assert json.loads((directory / "a-1234.json").read_text())["finished"]
        (manifests / "a-1234.json").write_text("{}")
        with board(poller) as b:
            b.poll()
            rows = b.rows()
        assert rows == {"WARC files": "1/2 done"}      # a finished input leaves its row


def test_no_progress_files_when_no_cli_watches(tmp_path, monkeypatch):
    monkeypatch.delenv("ROBERTA_PROGRESS_DIR", raising=False)
    with input_progress("a", "a", __file__) as reporter:
        assert reporter is None


def test_pretrain_row_has_loss_tokens_per_second(tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    assert last_metrics(metrics) is None
    metrics.write_text("".join(json.dumps({"step": s, "loss": 9.0 - s, "tokens_per_s": 1234.5})
                               + "\n" for s in (1, 2, 3)) + '{"step": 4, "lo')   # being written
    assert last_metrics(metrics)["step"] == 3
    with board(MetricsPoller(metrics, 10)) as b:
        b.poll()
        assert b.rows() == {"pretrain": "3/10 loss 6.000, 1,234 tok/s"}


def test_stage_callbacks_and_jobs_share_the_board(tmp_path):
    from flows.progress import StageProgress

    jobs = tmp_path / "results" / "jobs" / "sst2"
    jobs.mkdir(parents=True)
    (jobs / "old.json").write_text("{}")          # a cached job of an earlier run
    poller = JobsPoller(str(tmp_path))
    with board(poller) as b:
        StageProgress()("train-tokenizer", 0, None)    # no total: no Prefect artifact
        b.stage("shard-corpus", 3, 4)
        (jobs / "new.json").write_text("{}")
        b.poll()
        rows = b.rows()
    assert rows == {"train-tokenizer": "0", "shard-corpus": "3/4",
                    "finetune-eval jobs": "1 finished"}


def test_a_write_after_the_watch_ended_is_harmless(tmp_path):
    reporter = InputProgressFile(str(tmp_path / "gone"), "x", "x", 10)
    reporter.record(1)
    reporter.finish()


def test_the_pretrain_summary_fits_80_columns(tmp_path, capsys):
    from flows.cli.pretrain import print_summary

    run_dir = tmp_path / ("a-rather-long-run-root-name" * 3) / "pretrain" / "tiny"
    run_dir.mkdir(parents=True)
    (run_dir / "metrics.jsonl").write_text(json.dumps(
        {"step": 1, "loss": 7.5, "tokens_per_s": 1000.0, "lr": 1e-3}) + "\n")
    checkpoint = str(run_dir / "checkpoints" / "step-00000001")
    print_summary("tiny", run_dir, {"loss_png": str(run_dir / "loss.png"), "summary": {
        "run_dir": str(run_dir), "checkpoint": checkpoint, "steps": 1, "batch_size": 8,
        "world_size": 1, "micro_batch_size": 8, "accumulation": 1, "valid_loss": 7.4,
        "elapsed_s": 12.5}})
    out = capsys.readouterr().out
    table = out[:out.index("loss curve:")]
    assert all(len(line) <= 80 for line in table.splitlines()), table
    assert "…" not in table                                     # wrapped, never cut
    assert checkpoint in "".join(line.strip("│ ") for line in table.splitlines())


def test_a_stage_has_a_row_from_its_start(tmp_path):
    from flows.progress import StagesPoller

    corpus_done, tokenizer_done = tmp_path / "dedup_report.json", tmp_path / "tokenizer.json"
    poller = StagesPoller([("tok", "train-tokenizer", corpus_done, tokenizer_done),
                           ("shard", "shard-corpus", tokenizer_done, None)])
    with board(poller) as b:
        b.poll()
        assert b.rows() == {}
        corpus_done.write_text("{}")
        b.poll()
        assert b.rows() == {"train-tokenizer": "running"}
        b.show("tok", "train-tokenizer", completed=1, total=4, status="1/4")   # it reports
        tokenizer_done.write_text("{}")
        b.poll()
        assert b.rows() == {"train-tokenizer": "1/4", "shard-corpus": "running"}
    with board(poller) as b:        # a rerun: the stage was done earlier, reports nothing
        b.poll()
        assert b.rows() == {"train-tokenizer": "done", "shard-corpus": "running"}
