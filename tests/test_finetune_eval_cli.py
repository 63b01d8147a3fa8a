"""finetune-eval's checks before any job runs, as a user meets them: bad arguments and missing
task data are exit 2 with a message saying what to do, within a second (Prefect never starts)
and without a row in the results table; `--data-dir synthetic` as in `roberta pipeline`; and
the results table printed whole when stdout is not a terminal."""
import os
import subprocess
import sys

import pytest

from evaluation.aggregate import aggregate
from evaluation.results import append_results
from evaluation.synthetic import make_tiny_checkpoint, write_synthetic_sst2


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_tiny_checkpoint(tmp_path_factory.mktemp("ck") / "tiny")


def roberta(*args: str, prefect_home) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PREFECT_HOME": str(prefect_home)}
    return subprocess.run([sys.executable, "-m", "flows.cli", *args], capture_output=True,
                          text=True, timeout=300, env=env)


def assert_refused_early(run, root, prefect_home, *wanted: str):
    assert run.returncode == 2, run.stdout + run.stderr
    for text in wanted:
        assert text in run.stderr, run.stderr
    assert run.stderr.startswith("roberta finetune-eval: ") and '"' not in run.stderr
    assert not (root / "results").exists()                    # no job ran, no row written
    assert not list(prefect_home.glob("prefect.db*"))         # refused before Prefect started


def test_missing_data_dir_or_task_files_is_exit_2_before_any_job(tmp_path, checkpoint):
    root, home = tmp_path / "run", tmp_path / "prefect"
    home.mkdir()
    common = ["finetune-eval", "--root", str(root), "--checkpoint", str(checkpoint)]

    run = roberta(*common, "--data-dir", str(tmp_path / "nonexistent" / "dir"), "--tasks", "sst2",
                  prefect_home=home)
    assert_refused_early(run, root, home, f"--data-dir {tmp_path / 'nonexistent' / 'dir'}: "
                         "no such directory", "--data-dir synthetic")

    data = tmp_path / "data"
    write_synthetic_sst2(data, n_train=10, n_dev=5)
    (data / "SST-2" / "dev.tsv").unlink()
    run = roberta(*common, "--data-dir", str(data), "--tasks", "sst2,rte", prefect_home=home)
    assert_refused_early(run, root, home, f"task data missing under {data}",
                         "SST-2/dev.tsv (sst2)", "RTE/train.tsv (rte)", "RTE/dev.tsv (rte)")
    assert "SST-2/train.tsv" not in run.stderr


def test_bad_arguments_are_exit_2_with_a_clean_message(tmp_path, checkpoint):
    root, home = tmp_path / "run", tmp_path / "prefect"
    home.mkdir()
    data = tmp_path / "data"
    write_synthetic_sst2(data, n_train=10, n_dev=5)
    common = ["finetune-eval", "--root", str(root), "--checkpoint", str(checkpoint),
              "--data-dir", str(data)]

    run = roberta(*common, "--tasks", "sst3", prefect_home=home)
    assert_refused_early(run, root, home, "--tasks: unknown task 'sst3'; known: cola, sst2")

    run = roberta(*common, "--tasks", "sst2", "--epochs", "0", "--batch-sizes", "8,0",
                  prefect_home=home)
    assert_refused_early(run, root, home, "--batch-sizes must be at least 1, got 8,0",
                         "--epochs must be at least 1, got 0")


def test_synthetic_data_dir_is_the_pipelines(tmp_path, checkpoint):
    from flows.finetune_eval import InputError, check_inputs
    from evaluation.synthetic import write_standin_tasks

    root = tmp_path / "run"
    data, specs, model_dir = check_inputs(root, "synthetic", checkpoint=str(checkpoint))
    assert data == root / "eval-data" and model_dir == checkpoint
    assert [s.name for s in specs] == ["sst2", "squad1"]      # the pipeline's default tasks
    for f in ("SST-2/train.tsv", "SST-2/dev.tsv", "SQuAD/train-v1.1.json", "SQuAD/dev-v1.1.json"):
        assert (data / f).stat().st_size > 0
    same = tmp_path / "pipeline-data"
    write_standin_tasks(same)                                 # what `roberta pipeline` writes
    assert (same / "SST-2" / "train.tsv").read_bytes() == (data / "SST-2" / "train.tsv").read_bytes()

    with pytest.raises(InputError, match="--data-dir synthetic generates only sst2,squad1"):
        check_inputs(root, "synthetic", "race", checkpoint=str(checkpoint))
    assert not (root / "results").exists()


def test_results_table_is_not_cut_when_stdout_is_not_a_terminal(tmp_path):
    error = (f"DataFormatError: {tmp_path}/some/long/path/to/the/task/data/SST-2/train.tsv: "
             "file not found")
    job = {"task": "sst2", "model_dir": str(tmp_path / "ck"), "lr": 1e-5, "batch_size": 16,
           "seed": 1, "error": error, "best": {}, "history": [], "time_s": 1.0}
    append_results(tmp_path, aggregate([job]), model="tiny")
    run = roberta("results", "--root", str(tmp_path), prefect_home=tmp_path)
    assert run.returncode == 0, run.stderr
    assert error in run.stdout, run.stdout                    # whole, on one line
    assert error in (tmp_path / "results" / "results.md").read_text()
