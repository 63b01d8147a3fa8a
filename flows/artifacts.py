"""Prefect artifacts the flows share."""
from __future__ import annotations

import base64
from pathlib import Path

# The UI shows image artifacts by URL; a data URL keeps the run self-contained, up to a size
# the API stores comfortably.
MAX_IMAGE_BYTES = 2_000_000


def publish_png(png: Path, key: str, description: str) -> None:
    """`png` as an image artifact (a data URL), when it exists and is small enough."""
    from prefect.artifacts import create_image_artifact

    png = Path(png)
    if not png.exists() or png.stat().st_size >= MAX_IMAGE_BYTES:
        return
    create_image_artifact(image_url="data:image/png;base64," +
                          base64.b64encode(png.read_bytes()).decode(),
                          key=key, description=description)
