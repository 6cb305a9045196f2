from executors.loader.executor import ImageLoader

__all__ = ["ImageLoader"]
