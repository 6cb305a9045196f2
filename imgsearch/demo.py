"""The demo's data: the sample set where the user has none, and a query from what was indexed.

The demo writes the sample set only into a folder it creates itself; a folder the user gave is
read, never written to.
"""

import logging
from pathlib import Path
from typing import Optional

from executors.errors import UserError
from executors.loader.filetypes import SNIFF_BYTES, sniff_mime

logger = logging.getLogger(__name__)


def _images(folder: Path) -> list[Path]:
    """Image files under ``folder``, told by their first bytes as the loader tells them, in
    path order (hidden files and folders left out, as the loader leaves them)."""
    found = []
    for path in sorted(folder.rglob("*")):
        if any(part.startswith(".") for part in path.relative_to(folder).parts) or not path.is_file():
            continue
        try:
            with path.open("rb") as f:
                head = f.read(SNIFF_BYTES)
        except OSError:
            continue
        if sniff_mime(head):
            found.append(path)
    return found


def prepare_demo_data(data: Path, host: Optional[str]) -> bool:
    """Whether the demo must build the sample set into ``data`` first: only where ``data`` does
    not exist yet. An existing folder with no image is an error, never written into."""
    if host or data.is_dir() and _images(data):
        return False
    if data.exists():
        raise UserError(
            f"{data} holds no images, and the demo does not write into a folder it did not create: "
            "give --data an image folder, or a new folder for the sample set"
        )
    return True


def pick_query(data: Path) -> Path:
    """The image query: in the sample set a captioned variant (``*__v1.jpg``, whose template is
    indexed too, so the first hit shows what the encoder saw through the caption); in any other
    folder its first image."""
    variants = sorted(data.rglob("*__v1.jpg"))
    if variants:
        return variants[0]
    images = _images(data)
    if not images:
        raise UserError(f"no image files found under {data}")
    return images[0]
