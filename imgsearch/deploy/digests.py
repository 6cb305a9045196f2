"""Images pinned by digest: `app.py k8s --image-digests FILE`.

A tag can be moved to other bytes; a digest cannot. Once the images are built and pushed, the
operator writes what the registry answered into a JSON file, one entry per image the manifests
use, and regenerates: every ``image:`` becomes ``name:tag@sha256:…`` (the tag kept for people,
the digest for the runtime, which then pulls exactly those bytes). Every image must be listed
(Qdrant's too): a half-pinned deployment would look pinned and not be. E.g. after a push::

    {"imgsearch/loader:0.1.0": "sha256:3f1c…", "qdrant/qdrant:v1.19.0-unprivileged": "sha256:9ab2…", …}

(a value may also be a whole ``repo@sha256:…`` reference, as ``docker inspect --format
'{{index .RepoDigests 0}}' IMAGE`` prints it).
"""

import json
import re
from pathlib import Path
from typing import Optional

from executors.errors import UserError

DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


class DigestError(UserError, ValueError):
    """The digests file is unreadable, malformed, or leaves an image unpinned."""


def load(path: Optional[Path]) -> Optional[dict[str, str]]:
    """{image reference: sha256 digest} from the file, checked; None without a file."""
    if path is None:
        return None
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise DigestError(f"cannot read the image digests {path}: {exc}") from None
    if not isinstance(raw, dict):
        raise DigestError(f"{path}: expected a JSON object of image -> sha256 digest")
    out = {}
    for ref, value in raw.items():
        digest = str(value).rsplit("@", 1)[-1]
        if not DIGEST.match(digest):
            raise DigestError(f"{path}: {ref}: {value!r} is not a sha256 digest (sha256: and 64 hex digits)")
        out[str(ref)] = digest
    return out


def _containers(doc: dict) -> list[dict]:
    pod = ((doc.get("spec") or {}).get("template") or {}).get("spec") or {}
    return [*pod.get("initContainers", []), *pod.get("containers", [])]


def images(docs: list[dict]) -> set[str]:
    return {c["image"] for d in docs for c in _containers(d)}


def pin(docs: list[dict], digests: Optional[dict[str, str]]) -> list[dict]:
    """``docs`` with every container image pinned (in place); unchanged without digests."""
    if digests is None:
        return docs
    missing = sorted(i for i in images(docs) if i.split("@")[0] not in digests)
    if missing:
        raise DigestError(
            f"no digest for {', '.join(missing)} in --image-digests: list every image (push them first; docs/deploy.md, 'Pinning images')"
        )
    for d in docs:
        for c in _containers(d):
            ref = c["image"].split("@")[0]
            c["image"] = f"{ref}@{digests[ref]}"
    return docs
