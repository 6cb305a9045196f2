"""Vector-store layer of the indexer: Qdrant, one collection per model.

Two backends behind one interface (:class:`VectorStore`, ``interface.py``):

* :class:`EdgeStore` (``edge.py``) – Qdrant Edge embedded in this process;
* :class:`ServerStore` (``server.py``) – a Qdrant server or cluster through ``qdrant_client``.
"""

from .edge import EdgeStore
from .interface import CollectionInfo, Hit, StoreInUseError, UnknownCollectionError, VectorStore, point_id, validate_name
from .server import ServerStore

__all__ = [
    "CollectionInfo",
    "EdgeStore",
    "Hit",
    "ServerStore",
    "StoreInUseError",
    "UnknownCollectionError",
    "VectorStore",
    "point_id",
    "validate_name",
]
