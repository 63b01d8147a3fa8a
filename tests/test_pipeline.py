"""`roberta pipeline` (what `make demo` runs): all five stages on the bundled sample, then a
rerun that skips every finished stage."""
import json
import os
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow

DEMO_ARGS = ["--vocab-size", "4000", "--block-size", "128", "--config", "tiny", "--steps", "60",
             "--seeds", "1", "--lrs", "1e-3", "--batch-sizes", "8", "--epochs", "4"]


def pipeline(root, *extra) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flows.cli", "pipeline", "--root", str(root),
                           str(REPO / "corpus" / "sample"), *DEMO_ARGS, *extra],
                          capture_output=True, text=True, timeout=900,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_pipeline_end_to_end_then_rerun_skips(tmp_path):
    run = pipeline(tmp_path)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    for path in ("corpus/dedup_report.json", "tokenizer/tokenizer.json", "shards/manifest.json",
                 "pretrain/tiny/loss.png", "results/results.parquet", "results/results.png"):
        assert (tmp_path / path).exists(), path
    checkpoint = tmp_path / "pretrain" / "tiny" / "checkpoints" / "step-00000060"
    assert json.loads((checkpoint / "checkpoint.json").read_text())["step"] == 60
    rows = pq.read_table(tmp_path / "results" / "results.parquet").to_pylist()
    assert {r["task"] for r in rows} == {"sst2", "squad1"}
    assert all(r["error"] is None and r["checkpoint"] == str(checkpoint) for r in rows)
    assert "Where everything is" in run.stdout and str(checkpoint) in run.stdout
    # the progress board (what make demo shows live) has a row for each of the five stages
    for row in ("build-corpus inputs", "train-tokenizer", "shard-corpus", "pretrain",
                "finetune-eval jobs"):
        assert row in run.stdout, (row, run.stdout[:3000])

    started = time.time()
    again = pipeline(tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert ("already done, skipped: build-corpus, train-tokenizer, shard-corpus, pretrain"
            in again.stdout)
    assert time.time() - started < 120


@pytest.mark.parametrize("argv", [["pipeline", "corpus/sample/", "--steps", "0"],
                                  ["pipeline", "corpus/sample/", "--batch-size", "-8"],
                                  ["pretrain", "--steps", "0"],
                                  ["pretrain", "--micro-batch-size", "0"],
                                  ["pretrain", "--workers", "two"]])
def test_counts_must_be_positive(argv, capsys):
    # 0 used to mean "the preset" (pretrain --steps 0 ran 1000 steps)
    from flows.cli import build_parser

    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "must be at least 1" in err or "not an integer: 'two'" in err


def test_verbose_wins_over_an_inherited_quiet_console(monkeypatch):
    # A `roberta` process started by another (or by a test that ran main() in-process)
    # inherits PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL=CRITICAL; --verbose must undo it.
    from flows.cli import _quiet_prefect_console

    monkeypatch.setenv("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
    monkeypatch.setenv("ROBERTA_RAY_LOG_TO_DRIVER", "0")
    _quiet_prefect_console(verbose=True)
    assert os.environ["PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"] != "CRITICAL"
    assert os.environ["ROBERTA_RAY_LOG_TO_DRIVER"] == "1"


def test_pretrain_config_must_be_on_the_pipelines_root(tmp_path):
    # one run root for every stage: a pretrain config for another root is refused, not
    # silently trained on other shards or re-rooted
    from flows.pipeline import pretrain_stage_config
    from training.pretrain_config import PretrainConfig

    root = str(tmp_path / "run")
    config = PretrainConfig.for_run(root, "tiny", steps=300)
    assert pretrain_stage_config(root, config) is config
    assert pretrain_stage_config(root + "/", config) is config
    with pytest.raises(ValueError, match="is not the pipeline's root"):
        pretrain_stage_config(str(tmp_path / "other"), config)
    default = pretrain_stage_config(root, None)
    assert (default.root, default.model, default.run) == (root, "base", "base")
