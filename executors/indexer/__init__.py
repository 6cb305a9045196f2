from executors.indexer.executor import QdrantIndexer

__all__ = ["QdrantIndexer"]
