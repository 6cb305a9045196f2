"""Fixtures of the fault-injection suite live in faults_helpers.py, beside the helpers."""

from faults_helpers import shared_dir, tiny_clip  # noqa: F401  (pytest fixtures)
