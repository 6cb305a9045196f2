"""What ``--data`` names: a local folder, or the objects under a URL (``s3://bucket/prefix``,
``gs://...``, ``az://...``), which the loader lists and reads itself (executors/loader/storage.py)."""

import hashlib
import logging
import posixpath
from pathlib import Path

import fsspec

from executors.errors import UserError
from executors.loader.storage import filesystem, iter_objects
from executors.urls import DataSource, is_url

__all__ = ["DataSource", "check_data", "data_name", "data_ref", "listing_digest", "read_bytes"]

logger = logging.getLogger(__name__)


def data_ref(data: DataSource) -> str:
    """What the loader is sent: the URL, or the folder's absolute path."""
    return data if isinstance(data, str) else str(Path(data).resolve())


def data_name(data: DataSource) -> str:
    """The dataset's default name: the folder's name, or the URL's last prefix (its bucket at the top)."""
    if isinstance(data, str):
        return posixpath.basename(data.split("://", 1)[1].rstrip("/"))
    return Path(data).resolve().name


def check_data(data: DataSource, hint: str = "") -> None:
    """A clear error now for a folder that is not one, or a URL whose bucket or prefix cannot be read."""
    if isinstance(data, str):
        try:
            fs, root = filesystem(data)
            if not fs.exists(root):
                raise UserError(f"no bucket or prefix at {data} (or no permission to see it)")
        except ValueError as exc:
            raise UserError(str(exc)) from None
        except UserError:
            raise
        except Exception as exc:  # noqa: BLE001  each backend raises its own types (credentials, network)
            raise UserError(f"cannot read {data}: {exc}") from None
        return
    if not data.exists():
        raise UserError(f"data folder not found: {data}{hint}")
    if not data.is_dir():
        raise UserError(f"not a folder: {data}")


def listing_digest(url: str) -> str:
    """Keys, sizes and ETags of every object under the URL: changes when the objects do."""
    h = hashlib.sha256()
    for obj in iter_objects(url):
        h.update(f"{obj.key}\0{obj.size}\0{obj.etag}\n".encode())
    return h.hexdigest()


def read_bytes(source: str) -> bytes:
    """The bytes of a file, or of an object named by URL (through fsspec, as the loader reads it)."""
    if is_url(source):
        with fsspec.open(source, "rb") as fh:
            return fh.read()
    return Path(source).read_bytes()
