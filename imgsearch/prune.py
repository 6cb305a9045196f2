"""`app.py index --prune`: forget stored paths whose files the scan no longer finds.

A collection remembers every path that held an image's bytes. When a file is deleted, moved
or edited, its old path stays behind and search keeps returning it. Pruning compares what is
stored with what this scan saw, and only removes a path when all of these hold:

- it lies under the scanned folder (a collection can hold other folders' images too);
- the scan read the folder and found images in it (an unmounted disk or an emptied
  folder looks like every file deleted);
- the scan had no error at that path (a file it could not read may still be there);
- the file is gone, or holds other bytes now (the new bytes were indexed in this run).

An image is deleted from the collection only when its last path is gone. Before any change
the whole collection is read page by page (memory stays flat), and nothing changes when more
than ``max_fraction`` of the folder's stored paths would go.
"""

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from docarray import DocList

from executors.docs import ImageDoc
from executors.errors import UserError
from imgsearch.flow import Gateway

logger = logging.getLogger(__name__)

PAGE = 4096  # stored images per /stored_paths request
REMOVE_BATCH = 512
TARGET = "indexer"  # flows/index.yml's name: the other stages would only pass the documents on


@dataclass
class PrunePlan:
    stored_under_root: int = 0  # paths stored under the scanned folder
    stale: list[tuple[str, list[str]]] = field(default_factory=list)  # (hash, paths to forget) per stored image

    @property
    def stale_paths(self) -> int:
        return sum(len(ps) for _, ps in self.stale)


def stored_images(gateway: Gateway, params: dict, page: int = PAGE) -> Iterator[ImageDoc]:
    """Every stored image of the collection (its hash and paths), read in pages."""
    after = None
    while True:
        got = gateway.post("/stored_paths", [], {**params, "after": after, "limit": page}, target=TARGET)
        yield from got
        if len(got) < page:
            return
        after = got[-1].id


def plan(stored: Iterator[ImageDoc], root: str, present: Mapping[str, str], unreadable: set[str]) -> PrunePlan:
    """What to forget: the stored paths under ``root`` that the scan did not find holding the
    stored bytes. ``present`` maps each path the scan hashed to its hash now."""
    prefix = root.rstrip("/") + "/"
    out = PrunePlan()
    for doc in stored:
        mine = [p for p in doc.paths or [] if p.startswith(prefix)]
        out.stored_under_root += len(mine)
        stale = [p for p in mine if p not in unreadable and present.get(p) != doc.hash]
        if stale and doc.hash:
            out.stale.append((doc.hash, stale))
    return out


def prune(gateway: Gateway, params: dict, root: str, present: Mapping[str, str], unreadable: set[str], max_fraction: float = 0.5) -> tuple[int, int]:
    """Forget the stale paths (see the module doc); return (paths forgotten, images deleted).
    Raises UserError, changing nothing, when the scan found no readable image or when more
    than ``max_fraction`` of the folder's stored paths would go."""
    if not present:
        raise UserError(
            f"--prune: the scan found no readable image under {root}, so nothing was removed "
            "(an unmounted disk or an emptied folder would look like every file deleted)"
        )
    return forget(gateway, params, root, plan(stored_images(gateway, params), root, present, unreadable), max_fraction)


def forget(gateway: Gateway, params: dict, root: str, todo: PrunePlan, max_fraction: float) -> tuple[int, int]:
    """Carry out a plan: (paths forgotten, images deleted); UserError, changing nothing, when
    more than ``max_fraction`` of the folder's stored paths would go."""
    if not todo.stale:
        return 0, 0
    share = todo.stale_paths / max(1, todo.stored_under_root)
    if share > max_fraction:
        raise UserError(
            f"--prune would forget {todo.stale_paths} of the {todo.stored_under_root} paths stored under {root} "
            f"({share:.0%}), more than --max-prune {max_fraction:g} allows; nothing was removed. "
            "If those files really are gone, run again with --max-prune 1"
        )
    deleted = 0
    docs = [ImageDoc(hash=h, paths=ps) for h, ps in todo.stale]
    for i in range(0, len(docs), REMOVE_BATCH):
        done = gateway.post("/remove_paths", DocList[ImageDoc](docs[i : i + REMOVE_BATCH]), params, request_size=REMOVE_BATCH, target=TARGET)
        deleted += sum(1 for d in done if d.indexed is False)
    logger.info("pruned %d paths under %s; %d images deleted", todo.stale_paths, root, deleted)
    return todo.stale_paths, deleted
