"""Jina executors of the image-search flow: loader → normalizer → encoder → indexer."""
