"""The `roberta` CLI as a whole: building the parser and parsing import neither Prefect nor
torch (`roberta --help` stays instant); every subcommand maps errors to exit codes the same
way (bad input 2 with `roberta <cmd>: <message>`, a failure 1 on one line, Ctrl-C 130)."""
import argparse
import os
import subprocess
import sys

import pytest

from flows.cli import COMMANDS, build_parser
from flows.cli.common import (EXIT_BAD_INPUT, EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK, RunFailed,
                              run_command)


def test_parsing_imports_neither_prefect_nor_torch():
    code = ("import sys; from flows.cli import build_parser; p = build_parser(); "
            "[p.parse_args(a) for a in (['pretrain'], ['ablations'], ['pipeline'], "
            "['shard-corpus', '--mix', 'wikipedia=2'], ['build-corpus', 'x'])]; "
            "print(sorted({'prefect', 'torch'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_every_subcommand_has_help():
    parser = build_parser()
    for name in COMMANDS:
        with pytest.raises(SystemExit) as exit_:
            parser.parse_args([name, "--help"])
        assert exit_.value.code == 0


class _Command:
    NAME = "demo"

    def __init__(self, error: BaseException | None):
        self.error = error

    def run(self, args):
        if self.error is not None:
            raise self.error
        return EXIT_OK


@pytest.mark.parametrize("error,code,message", [
    (None, EXIT_OK, ""),
    (ValueError("--steps must be >= 1"), EXIT_BAD_INPUT, "roberta demo: --steps must be >= 1\n"),
    (KeyError("unknown task 'x'"), EXIT_BAD_INPUT, "roberta demo: unknown task 'x'\n"),
    (FileNotFoundError("no corpus at r"), EXIT_BAD_INPUT, "roberta demo: no corpus at r\n"),
    (RuntimeError("worker died\n  Traceback ...\n  more"), EXIT_ERROR,
     "roberta demo: RuntimeError: worker died\n"),
    (RunFailed("training failed: x (resume with --resume)"), EXIT_ERROR,
     "roberta demo: training failed: x (resume with --resume)\n"),
    (KeyboardInterrupt(), EXIT_INTERRUPTED, "")])
def test_one_exit_code_mapping_for_every_subcommand(error, code, message, capsys):
    assert run_command(_Command(error), argparse.Namespace(verbose=False)) == code
    assert capsys.readouterr().err == message


def test_verbose_shows_the_traceback_of_a_failure(capsys):
    assert run_command(_Command(RuntimeError("boom")), argparse.Namespace(verbose=True)) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and err.endswith("roberta demo: RuntimeError: boom\n")


def test_pretrain_checks_masking_before_prefect_starts(tmp_path_factory, tmp_path):
    # --masking static on shards without static masks: refused by the CLI's one check of the
    # whole config, not after Prefect (and the flow) started
    from tests._pretrain_shards import sample_shards_root

    root = sample_shards_root(tmp_path_factory.getbasetemp())
    home = tmp_path / "prefect"
    home.mkdir()
    run = subprocess.run(
        [sys.executable, "-m", "flows.cli", "pretrain", "--root", str(root), "--run",
         "static-masking", "--masking", "static", "--steps", "4", "--batch-size", "8",
         "--no-ray"], capture_output=True, text=True, timeout=300,
        env={**os.environ, "PREFECT_HOME": str(home)})
    assert run.returncode == EXIT_BAD_INPUT, run.stdout + run.stderr
    assert run.stderr.startswith("roberta pretrain: ") and "no static masks" in run.stderr
    assert "Traceback" not in run.stderr
    assert not list(home.glob("prefect.db*"))                 # refused before Prefect started
    assert not (root / "pretrain" / "static-masking").exists()
