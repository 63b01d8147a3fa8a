"""TensorBoard event files beside `metrics.jsonl`, so a run's curves open in TensorBoard like
any other PyTorch run's: `tensorboard --logdir <root>/pretrain` shows every run by its name.

Written with tensorboardX (what Ray Train ships; `torch.utils.tensorboard` needs the whole
`tensorboard` package), by rank 0 only, as an `on_metrics` callback of the loop: a sink around
the training core, which itself needs nothing but torch, numpy, pyarrow and safetensors.

A resumed run opens a new event file that starts with a session-start marker at its first
update: TensorBoard then hides the updates the interrupted attempt logged past its last
checkpoint, so the curve it draws is the run's one trajectory, as in `metrics.jsonl`.
"""
from __future__ import annotations

import math
import os
import time
import warnings
from pathlib import Path

# metrics.jsonl key -> TensorBoard tag (the "train/" and "valid/" sections of TensorBoard)
TAGS = {"loss": "train/loss", "perplexity": "train/perplexity", "lr": "train/lr",
        "grad_norm": "train/grad_norm", "tokens_per_s": "train/tokens_per_s",
        "mfu": "train/mfu", "valid_loss": "valid/loss", "valid_perplexity": "valid/perplexity"}


class TensorBoardLog:
    """`log(metrics)` per update; `close()` at the end. Best effort, like the Ray metrics: a
    writer that cannot start warns once and the run goes on without it.

    Events are written and flushed in the calling thread, not through tensorboardX's
    `SummaryWriter`, whose queue and writer thread hold events back: a worker lost with its
    node is SIGKILLed and never closes its writer, and what it held back would be missing from
    the curve the restarted attempt continues."""

    def __init__(self, run_directory: str | os.PathLike):
        self.run_dir = Path(run_directory)
        self.events = None
        self.failed = False

    def __call__(self, m: dict) -> None:
        if self.failed or m.get("skipped") or m.get("step") is None:
            return
        step = int(m["step"])
        if self.events is None and not self._open(step):
            return
        from tensorboardX.proto.event_pb2 import Event
        from tensorboardX.summary import scalar

        now = time.time()
        try:
            for key, tag in TAGS.items():
                v = m.get(key)
                if isinstance(v, (int, float)) and math.isfinite(v):
                    self.events.write_event(Event(wall_time=now, step=step,
                                                  summary=scalar(tag, float(v))))
            # One small write and fsync per optimizer update: nothing beside an update of
            # RoBERTa's batch, and milliseconds beside a tiny CPU run's.
            self.events.flush()
        except OSError as exc:     # a full disk, a lost mount: the run goes on without curves
            warnings.warn(f"TensorBoard event files for {self.run_dir} stop at step {step}: "
                          f"{exc}")
            self.failed = True

    def _open(self, first_step: int) -> bool:
        """The event file of this attempt, starting with the session-start marker at
        `first_step` (what tensorboardX's purge_step writes): where its curve takes over."""
        try:
            from tensorboardX.event_file_writer import EventsWriter
            from tensorboardX.proto.event_pb2 import Event, SessionLog

            self.run_dir.mkdir(parents=True, exist_ok=True)
            # the pid keeps two attempts started within one second in separate files
            self.events = EventsWriter(str(self.run_dir / "events"),
                                       filename_suffix=f".{os.getpid()}")
            self.events.write_event(Event(wall_time=time.time(), step=first_step,
                                          session_log=SessionLog(status=SessionLog.START)))
        except (ImportError, OSError) as exc:
            warnings.warn(f"no TensorBoard event files for {self.run_dir}: {exc}")
            self.failed = True
            return False
        return True

    def close(self) -> None:
        if self.events is not None:
            self.events.close()
            self.events = None


__all__ = ["TensorBoardLog", "TAGS"]
