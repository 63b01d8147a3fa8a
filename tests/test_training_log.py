"""flows/training_log.py: the flow-run log's step lines follow metrics.jsonl as the loop writes
it (appends, a line half-written, the whole file rewritten by a restart), each due step once."""
import json
import os

from flows.training_log import MetricsFollower, step_line


def record(step: int, loss: float = 5.0) -> str:
    return json.dumps({"step": step, "loss": loss, "tokens_per_s": 1234.5}) + "\n"


def rewrite(path, text: str) -> None:
    """As the loop does at a (re)start: a new file put in place whole."""
    tmp = path.with_name(path.name + ".new")
    tmp.write_text(text)
    os.replace(tmp, path)


def test_step_line():
    assert step_line({"step": 300, "loss": 5.12344, "tokens_per_s": 12345.4}, 1000) == (
        "step 300/1000: loss 5.1234, 12,345 tokens/s")
    assert step_line({"step": 3, "loss": None, "tokens_per_s": 1.0, "valid_loss": 4.5}, None) == (
        "step 3: loss n/a, 1 tokens/s, validation loss 4.5000")


def test_follows_appends_half_lines_and_a_restart(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text(record(1) + record(2))              # an earlier attempt's file: never read
    lines: list[str] = []
    follower = MetricsFollower(path, every=2, log=lines.append, total=7)
    follower.poll()
    assert lines == []

    rewrite(path, record(1) + record(2) + record(3)[:10])   # this run; step 3 half-written
    follower.poll()
    assert [line.split(":")[0] for line in lines] == ["step 2/7"]
    with open(path, "a") as f:
        f.write(record(3)[10:] + record(4, loss=4.0) + json.dumps({"step": 5, "skipped": True})
                + "\n")
    follower.poll()
    assert lines[-1] == "step 4/7: loss 4.0000, 1,234 tokens/s"

    # a restart from the checkpoint at step 2 rewrites the file: steps 3-4 again, then on
    rewrite(path, "".join(record(s) for s in (1, 2, 3, 4, 5, 6, 7)))
    follower.poll()
    assert [line.split(":")[0] for line in lines] == ["step 2/7", "step 4/7", "step 6/7",
                                                      "step 7/7"]


def test_a_resumed_run_logs_from_its_checkpoint_on(tmp_path):
    path = tmp_path / "metrics.jsonl"
    lines: list[str] = []
    with MetricsFollower(path, every=1, log=lines.append, after_step=2, interval_s=0.05):
        rewrite(path, "".join(record(s) for s in (1, 2, 3)))
    assert [line.split(":")[0] for line in lines] == ["step 3"]


def test_tensorboard_keeps_every_update_of_a_worker_killed_without_closing(tmp_path):
    """A worker lost with its node is SIGKILLed: nothing closes its writer. Every update it
    logged is in the event file all the same, so the curve a restart continues is whole."""
    import subprocess
    import sys

    from tests.conftest import REPO
    from tests.tensorboard_events import scalar_curves

    code = ("import os, sys; from training.tensorboard_log import TensorBoardLog\n"
            "log = TensorBoardLog(sys.argv[1])\n"
            "for step in range(1, 6): log({'step': step, 'loss': 10.0 - step})\n"
            "os._exit(0)   # as if killed: no close, no atexit\n")
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, cwd=REPO,
                   timeout=120)
    assert scalar_curves(tmp_path)["train/loss"] == [(s, 10.0 - s) for s in range(1, 6)]


def test_tensorboard_trouble_warns_and_never_stops_training(tmp_path):
    import pytest

    from training.tensorboard_log import TensorBoardLog

    log = TensorBoardLog(tmp_path)
    log({"step": 1, "loss": 9.0})

    def disk_full(event):
        raise OSError(28, "No space left on device")
    log.events.write_event = disk_full
    with pytest.warns(UserWarning, match="stop at step 2: .*No space left"):
        log({"step": 2, "loss": 8.0})
    log({"step": 3, "loss": 7.0})            # quietly off from now on
    log.close()


def test_the_earlier_attempts_file_deleted_and_written_anew_is_followed(tmp_path):
    """The launcher deletes a leftover metrics.jsonl and the new run creates one, which the
    filesystem may give the freed inode number (ext4 and tmpfs often do)."""
    path = tmp_path / "metrics.jsonl"
    path.write_text(record(1))                         # a run that never reached a checkpoint
    lines: list[str] = []
    follower = MetricsFollower(path, every=1, log=lines.append, total=2)
    path.unlink()
    path.write_text(record(1) + record(2))             # this run, in a new file
    follower.poll()
    assert [line.split(":")[0] for line in lines] == ["step 1/2", "step 2/2"]
