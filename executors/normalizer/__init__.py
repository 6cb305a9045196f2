from executors.normalizer.executor import ImageNormalizer

__all__ = ["ImageNormalizer"]
