"""Read TensorBoard event files back as TensorBoard does, without the `tensorboard` package:
the TFRecord framing (length, masked CRC-32C of the length, payload, masked CRC-32C of the
payload) around tensorboardX's own `Event` protobuf, and TensorBoard's rule for restarts (a
session-start event at step s hides the events of step >= s written before it)."""
from __future__ import annotations

import struct
from pathlib import Path

from tensorboardX.proto.event_pb2 import Event, SessionLog
from tensorboardX.record_writer import masked_crc32c


def read_events(path: Path):
    with open(path, "rb") as f:
        while header := f.read(8):
            (length,) = struct.unpack("<Q", header)
            assert struct.unpack("<I", f.read(4))[0] == masked_crc32c(header), path
            data = f.read(length)
            assert struct.unpack("<I", f.read(4))[0] == masked_crc32c(data), path
            yield Event.FromString(data)


def scalar_curves(logdir: Path, pattern: str = "events.out.tfevents.*") -> dict[str, list]:
    """{tag: [(step, value), ...]} over every event file in `logdir`, oldest file first."""
    curves: dict[str, list] = {}
    files = sorted(Path(logdir).glob(pattern))
    assert files, f"no event files in {logdir}"
    for path in files:
        for event in read_events(path):
            if event.session_log.status == SessionLog.START:
                for tag in curves:
                    curves[tag] = [(s, v) for s, v in curves[tag] if s < event.step]
            for value in event.summary.value:
                curves.setdefault(value.tag, []).append((event.step, value.simple_value))
    return curves
