"""Anything a user can type ends in an exit code the README lists, with one line naming the
problem and no traceback: a run root that is a file, --model-set/--optim-set values of the
wrong type or out of range, a PREFECT_HOME whose folder does not exist yet."""
import os
import subprocess
import sys

import pytest

from flows.cli.common import EXIT_BAD_INPUT
from training.config import ModelConfig, OptimConfig


def roberta(*argv, env=None, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flows.cli", *map(str, argv)],
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


@pytest.mark.parametrize("command", [["pipeline", "corpus/sample/"],
                                     ["build-corpus", "corpus/sample/"],
                                     ["train-tokenizer"]])
def test_a_root_that_is_a_file_is_exit_2_naming_the_root(tmp_path, command):
    afile = tmp_path / "notes.txt"
    afile.write_text("not a folder")
    for root, says in [(afile, "is a file"), (afile / "run", f"lies under the file {afile}")]:
        run = roberta(command[0], "--root", root, *command[1:])
        assert run.returncode == EXIT_BAD_INPUT, run.stderr
        assert f"--root: {root} {says}" in run.stderr and "Traceback" not in run.stderr


@pytest.mark.parametrize("option,message", [
    (["--model-set", "hidden_size=abc"], "hidden_size='abc': expected an integer"),
    (["--optim-set", "peak_lr=abc"], "peak_lr='abc': expected a number"),
    (["--model-set", "hidden=3"], "unknown ModelConfig field 'hidden'"),
    (["--model-set", "num_layers=-1"], "num_layers must be an integer >= 1, got -1"),
    (["--model-set", "num_heads=3"], "hidden_size 64 not divisible by num_heads 3"),
    (["--optim-set", "betas=0.9,1.5"], "betas must be two numbers in [0, 1)"),
    (["--optim-set", "peak_lr=0"], "peak_lr must be a number > 0, got 0.0")])
def test_model_and_optim_overrides_are_typed_and_checked_before_anything_starts(
        tmp_path, option, message):
    # no shards at this root: the values are refused before the run looks for them
    run = roberta("pretrain", "--root", tmp_path / "run", "--config", "tiny", *option)
    assert run.returncode == EXIT_BAD_INPUT, run.stdout + run.stderr
    assert message in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "run").exists()


def test_override_types_follow_the_fields():
    from flows.cli import build_parser

    args = build_parser().parse_args(
        ["pretrain", "--model-set", "mask_id=none", "--model-set", "nsp_head=true",
         "--model-set", "dropout=0", "--optim-set", "betas=[0.9, 0.999]",
         "--optim-set", "fused=null", "--optim-set", "warmup_steps=6"])
    assert args.model_set == [("mask_id", None), ("nsp_head", True), ("dropout", 0.0)]
    assert args.optim_set == [("betas", (0.9, 0.999)), ("fused", None), ("warmup_steps", 6)]


@pytest.mark.parametrize("fields,message", [
    (dict(num_layers=0), "num_layers must be an integer >= 1, got 0"),
    (dict(ffn_size="abc"), "ffn_size must be an integer >= 1, got 'abc'"),
    (dict(hidden_size=64, num_heads=5), "not divisible by num_heads 5"),
    (dict(vocab_size=True), "vocab_size must be an integer >= 1, got True"),
    (dict(dropout=1.0), "dropout must be in [0, 1), got 1.0")])
def test_model_config_ranges(fields, message):
    # whatever builds the config (a deployment's JSON, an HF config.json) meets the same checks
    with pytest.raises(ValueError) as err:
        ModelConfig.named("tiny", **fields)
    assert message in str(err.value)


@pytest.mark.parametrize("fields,message", [
    (dict(peak_lr=-1e-4), "peak_lr must be a number > 0"),
    (dict(peak_lr="abc"), "peak_lr must be a number > 0, got 'abc'"),
    (dict(end_lr=1.0), "end_lr must be a number in [0, peak_lr=0.001]"),
    (dict(betas=(0.9, 1.0)), "betas must be two numbers in [0, 1)"),
    (dict(betas=(0.9,)), "betas must be two numbers in [0, 1)"),
    (dict(eps=0), "eps must be > 0"),
    (dict(warmup_steps=-1), "warmup_steps must be an integer >= 0")])
def test_optim_config_ranges(fields, message):
    with pytest.raises(ValueError) as err:
        OptimConfig.named("tiny", **fields)
    assert message in str(err.value)
    assert OptimConfig.named("tiny", betas=[0.9, 0.98]).betas == (0.9, 0.98)


def test_a_missing_prefect_home_is_created_or_named(tmp_path, monkeypatch):
    from flows.cli import prefect_home_problem

    home = tmp_path / "not" / "yet" / "home"
    monkeypatch.setenv("PREFECT_HOME", str(home))
    assert prefect_home_problem() is None and home.is_dir()
    afile = tmp_path / "afile"
    afile.write_text("")
    monkeypatch.setenv("PREFECT_HOME", str(afile / "home"))
    assert f"PREFECT_HOME={afile / 'home'} cannot be created" in prefect_home_problem()
    # and through the CLI: exit 2 with that line, not a minute's wait for a timeout
    run = roberta("results", "--root", tmp_path / "run", env={"PREFECT_HOME": str(afile / "h")})
    assert run.returncode == EXIT_BAD_INPUT
    assert "cannot be created (Not a directory)" in run.stderr and "Traceback" not in run.stderr


@pytest.mark.parametrize("argv,message", [
    (["train-tokenizer", "--vocab-size", "100"], "must be at least 261, got 100"),
    (["pipeline", "--vocab-size", "5"], "must be at least 261, got 5"),
    (["pipeline", "--block-size", "1"], "must be at least 2, got 1"),
    (["shard-corpus", "--block-size", "0"], "must be at least 2, got 0"),
    (["shard-corpus", "--static-masks", "-1"], "must be at least 0, got -1"),
    (["build-corpus", "x.warc", "--workers", "0"], "must be at least 1, got 0"),
    (["import-corpus", "--name", "x", "y", "--download-retries", "-1"], "must be at least 0")])
def test_sizes_are_checked_while_parsing(argv, message, capsys):
    # found before the stages before them run (a pipeline used to build the corpus first)
    from flows.cli import build_parser

    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(argv)
    assert exit_.value.code == EXIT_BAD_INPUT and message in capsys.readouterr().err


def test_training_that_fails_before_any_checkpoint_does_not_advise_a_resume(tmp_path):
    """Prefect unreachable (a closed loopback port): exit 1, no traceback, and the advice is
    to run the command again, since --resume would find no checkpoint."""
    import shutil
    import socket

    from tests._pretrain_shards import sample_shards_root

    root = tmp_path / "run"
    shutil.copytree(sample_shards_root(tmp_path / "cache"), root)
    with socket.socket() as s:                       # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    run = roberta("pretrain", "--root", root, "--no-ray", "--steps", "2", "--batch-size", "4",
                  env={"PREFECT_API_URL": f"http://127.0.0.1:{closed}/api"})
    assert run.returncode == 1, run.stderr[-2000:]
    assert "training failed" in run.stderr and "Traceback" not in run.stderr
    assert "no checkpoint was written" in run.stderr and "--resume" not in run.stderr
