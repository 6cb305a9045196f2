"""What every encoder executor shares, a local model (base.py's TorchEncoder) or a remote API
(vertex.py): its registry spec and the ``/info`` it answers clients with."""

from pathlib import Path
from typing import ClassVar

from docarray import DocList
from jina import requests

from executors.contracts import INFO, EncoderInfo
from executors.docs import ImageDoc
from executors.encoders.specs import EncoderSpec, get_spec
from executors.stage import Stage, peak_rss_mb


class ModelLoadError(RuntimeError):
    """The checkpoint cannot be loaded; raised at start-up, before any work."""


def describe_checkpoint(checkpoint: str) -> str:
    return "local folder" if Path(checkpoint).expanduser().is_dir() else "hub id"


class EncoderStage(Stage):
    """What every encoder executor shares, local model or remote API: its registry spec
    (checked against the family it runs) and the ``/info`` it answers clients with.

    A subclass sets ``checkpoint``, ``dim``, ``batch_size`` and ``load_seconds``, and adds
    its own fields to ``info()``.
    """

    family: ClassVar[str] = ""

    def __init__(self, name: str, **kwargs):
        super().__init__(**kwargs)
        self.spec: EncoderSpec = get_spec(name)
        if self.spec.family != self.family:
            raise ValueError(f"encoder '{name}' belongs to the {self.spec.family} family, not {self.family}")

    def info(self) -> EncoderInfo:
        return EncoderInfo(
            encoder=self.spec.name,
            family=self.family,
            model=self.checkpoint,
            dim=self.dim,
            batch_size=self.batch_size,
            load_seconds=round(self.load_seconds, 3),
            pooling=self.spec.pooling,
            peak_rss_mb=peak_rss_mb(),
        )

    @requests(on=INFO)
    def info_endpoint(self, docs: DocList[ImageDoc], **kwargs) -> DocList[ImageDoc]:  # Jina's schema; the dict rides in results
        return self.info().to_dict()  # type: ignore[return-value]
