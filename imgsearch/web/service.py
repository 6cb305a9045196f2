"""What the search page asks for, answered through the flows' gateways (never Qdrant itself).

One gateway per encoder, as `app.py` starts them or a cluster runs them (`--host`); every
query goes through `/search`, so uploads pass the normalizer's limits and nothing is stored.
"""

import json
import logging
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from executors.auth import PATHS_PARAMETER
from executors.contracts import EncoderInfo
from executors.docs import ImageDoc
from imgsearch.flow import FlowError, Gateway, collection_name
from imgsearch.tiny_models import is_tiny_random

logger = logging.getLogger(__name__)

SEARCH_TIMEOUT_S = 120.0
KNOWN_LIMIT = 200_000  # hashes remembered for thumbnails and originals (~40 MB at most)


class ServiceError(ValueError):
    """A request the page cannot serve; the message is shown to the user as it is."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass
class Query:
    text: Optional[str] = None
    hash: Optional[str] = None  # "more like this": an indexed image's stored vector
    image: Optional[bytes] = None  # an uploaded file, sent through the normalizer
    filename: Optional[str] = None

    def kind(self) -> str:
        return "text" if self.text is not None else "hash" if self.hash else "image"


@dataclass
class Served:
    """One encoder's gateway and what its /info says."""

    name: str
    host: str
    info: EncoderInfo


def load_thresholds(reports: list[Path]) -> dict[str, dict]:
    """{collection: suggested threshold} from `app.py compare` reports (report.json); newest wins."""
    out: dict[str, dict] = {}
    for path in sorted((p for p in reports if p.is_file()), key=lambda p: p.stat().st_mtime):
        try:
            report = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            logger.warning("ignoring report %s: %s", path, exc)
            continue
        for rec in report.get("encoders", []):
            collection = (rec.get("index") or {}).get("collection")
            thr = (rec.get("quality") or {}).get("threshold")
            if rec.get("status") == "ok" and collection and thr and thr.get("threshold") is not None:
                out[collection] = {
                    "value": float(thr["threshold"]),
                    "precision": thr.get("precision"),
                    "recall": thr.get("recall"),
                    "report": str(path),
                    "random_weights": bool(rec.get("random_weights")),
                }
    return out


class KnownImages:
    """Indexed images the page has been shown, by hash: the only files it may read.

    Filled from search results (the index's own payloads), so a URL can name an image
    only by a hash the index returned, never by a path.
    """

    def __init__(self, limit: int = KNOWN_LIMIT):
        self._items: OrderedDict[str, dict] = OrderedDict()
        self._lock = threading.Lock()
        self.limit = limit

    def add(self, match: dict) -> None:
        if not match.get("hash") or not match.get("path"):
            return
        with self._lock:
            self._items[match["hash"]] = {k: match.get(k) for k in ("path", "label", "mime", "width", "height")}
            self._items.move_to_end(match["hash"])
            while len(self._items) > self.limit:
                self._items.popitem(last=False)

    def get(self, content_hash: str) -> Optional[dict]:
        with self._lock:
            return self._items.get(content_hash)


class SearchService:
    def __init__(
        self,
        hosts: dict[str, str],
        resize: Optional[int] = None,
        reports: tuple[Path, ...] = (),
        default_dataset: Optional[str] = None,
        timeout: float = SEARCH_TIMEOUT_S,
    ):
        self.resize = resize
        self.timeout = timeout
        self.default_dataset = default_dataset
        self.thresholds = load_thresholds(list(reports))
        self.known = KnownImages()
        self.encoders: dict[str, Served] = {}
        for name, host in hosts.items():
            self.encoders[name] = Served(name, host, Gateway(host, timeout=self.timeout).encoder_info())
        self._pool = ThreadPoolExecutor(max_workers=max(1, len(hosts)), thread_name_prefix="search")

    def _gateway(self, served: Served) -> Gateway:
        return Gateway(served.host, timeout=self.timeout)  # a client per call: nothing shared across threads

    # ------------------------------------------------------------------ what is served

    def config(self) -> dict:
        """Encoders, their collections per dataset and thresholds: everything the page starts from."""
        encoders: list[dict] = []
        datasets: dict[str, int] = {}  # dataset -> encoders that have indexed something in it
        for served in self.encoders.values():
            try:
                stats = self._gateway(served).collections()
                error = None
            except FlowError as exc:
                stats, error = [], str(exc)
            model = served.info.model
            mine = {}
            for c in stats:
                dataset = c.extra.get("dataset")
                if dataset and c.model == model and c.name == collection_name(dataset, model, self.resize):
                    mine[dataset] = {"collection": c.name, "count": int(c.count or 0), "threshold": self.thresholds.get(c.name)}
                    datasets[dataset] = datasets.get(dataset, 0) + (1 if c.count else 0)
            encoders.append(
                {
                    "name": served.name,
                    "model": model,
                    "text": served.info.text,
                    "dim": _int_or_none(served.info.dim),
                    "random_weights": is_tiny_random(model),
                    "collections": mine,
                    "error": error,
                }
            )
        # Default: the dataset the most encoders have indexed (ties: by name).
        ranked = sorted(datasets, key=lambda d: (-datasets[d], d))
        default = self.default_dataset if self.default_dataset in datasets else (ranked[0] if ranked else None)
        return {"encoders": encoders, "datasets": sorted(datasets), "default_dataset": default}

    # ------------------------------------------------------------------ searching

    def check_encoders(self, names: list[str]) -> list[str]:
        if not names:
            raise ServiceError("pick at least one encoder")
        for name in names:
            if name not in self.encoders:
                raise ServiceError(f"unknown encoder '{name}': this server serves {', '.join(self.encoders)}")
        return names

    def search(self, names: list[str], dataset: str, query: Query, k: int) -> dict:
        """The same query against each encoder's collection of `dataset`, one column each."""
        self.check_encoders(names)
        if not dataset:
            raise ServiceError("nothing is indexed yet: run `python app.py index` first")
        if sum(x is not None for x in (query.text, query.hash, query.image)) != 1:
            raise ServiceError("give exactly one query: a text, an uploaded image, or an indexed image to match")
        if query.text is not None and not query.text.strip():
            raise ServiceError("the text query is empty")
        columns = list(self._pool.map(lambda n: self._column(self.encoders[n], dataset, query, k), names))
        echo: dict = {"kind": query.kind()}
        if query.text is not None:
            echo["text"] = query.text
        elif query.hash:
            echo.update(hash=query.hash, **(self.known.get(query.hash) or {}))
        else:
            echo["filename"] = query.filename
        return {"query": echo, "dataset": dataset, "k": k, "columns": columns}

    def _column(self, served: Served, dataset: str, query: Query, k: int) -> dict:
        model = served.info.model
        collection = collection_name(dataset, model, self.resize)
        col: dict[str, Any] = {
            "encoder": served.name,
            "model": model,
            "collection": collection,
            "count": 0,
            "threshold": self.thresholds.get(collection),
            "random_weights": is_tiny_random(model),
            "matches": [],
            "has_more": False,
            "error": None,
            "state": "ok",
        }
        # The report's threshold separates image→image scores; text→image scores live on another scale.
        col["threshold_applies"] = col["threshold"] is not None and query.text is None
        if query.text is not None and not served.info.text:
            text_ones = ", ".join(n for n, s in self.encoders.items() if s.info.text) or "none served here"
            return {
                **col,
                "state": "unsupported",
                "error": f"encoder '{served.name}' cannot embed text: search with an image, or use a text-capable encoder ({text_ones})",
            }
        gateway = self._gateway(served)
        try:
            col["count"] = count = int(gateway.call("/count", {"collection": collection}).get("count", 0))
            if count == 0:
                return {
                    **col,
                    "state": "empty",
                    "error": f"nothing indexed with {served.name} in '{dataset}' yet: run `python app.py index --encoder {served.name}` first",
                }
            docs = gateway.post(
                "/search", [self._doc(query)], {"collection": collection, "top_k": k, "exclude_self": bool(query.hash), PATHS_PARAMETER: True}
            )  # thumbnails need them: sent with the token
        except FlowError as exc:
            return {**col, "state": "down", "error": f"the {served.name} flow is not answering: {exc}"}
        doc = docs[0] if docs else None
        if doc is None or doc.error:
            return {**col, "state": "query", "error": doc.error if doc else "the gateway returned no result"}
        threshold = col["threshold"]["value"] if col["threshold_applies"] else None
        for m in doc.matches or []:
            match = {
                "hash": m.get("hash"),
                "path": m.get("uri"),
                "name": Path(m.get("uri") or "").name,
                "label": m.get("label"),
                "score": float(m.get("score", 0.0)),
                "width": m.get("width"),
                "height": m.get("height"),
                "mime": m.get("mime"),
            }
            match["below"] = threshold is not None and match["score"] < threshold
            self.known.add(match)
            col["matches"].append(match)
        # "More" asks for a longer list: there is more when this one was cut at k.
        col["has_more"] = len(col["matches"]) >= k and k < count - (1 if query.hash else 0)
        return col

    @staticmethod
    def _doc(query: Query) -> ImageDoc:
        if query.text is not None:
            return ImageDoc(text=query.text)
        if query.hash:
            return ImageDoc(hash=query.hash)
        return ImageDoc(uri=f"upload:{query.filename or 'image'}", blob=query.image)

    def close(self) -> None:
        self._pool.shutdown(wait=False)


def _int_or_none(value) -> Optional[int]:
    return None if value is None else int(value)  # gateway parameters come back as floats
