"""The flow's gRPC gateway: Jina's own, in a process that runs the Jina fixes (jina_fixes.py).

Importing the package loads no Jina: ``app.py k8s`` reads replicas.py's settings, and parsing a
command line must stay free of Jina and torch. The gateway's config.yml loads jina_fixes itself."""


def __getattr__(name: str) -> object:
    if name == "PatchedGRPCGateway":
        from executors.gateway.jina_fixes import PatchedGRPCGateway

        return PatchedGRPCGateway
    raise AttributeError(name)


__all__ = ["PatchedGRPCGateway"]
