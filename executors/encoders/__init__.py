"""Encoder executors, one per model family, all built on TorchEncoder (see base.py)."""
