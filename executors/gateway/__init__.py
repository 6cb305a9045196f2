"""The flow's gRPC gateway: Jina's own, in a process that runs the Jina fixes (jina_fixes.py)."""

from executors.gateway.jina_fixes import PatchedGRPCGateway

__all__ = ["PatchedGRPCGateway"]
