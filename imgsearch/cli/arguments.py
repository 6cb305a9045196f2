"""The options several commands share, added the same way everywhere (one grammar):

- ``--encoder NAME…`` (names or comma lists; search takes one), ``--encoders`` deprecated;
- ``--model [ENCODER=]CHECKPOINT``, repeatable; a bare checkpoint where one encoder is named;
- the store group ``--store``, ``--qdrant-url``, ``--qdrant-api-key``;
- ``--host grpc://HOST:PORT``, ``--runtime``, ``--resize``, ``--json``.
"""

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

from executors.encoders.runtime_env import CHOICES as RUNTIME_CHOICES
from executors.encoders.specs import DEFAULT_ENCODER

__all__ = ["RUNTIME_CHOICES", "default", "encoder_args", "fraction", "host_arg", "json_arg", "model_arg", "resize_arg", "runtime_arg", "store_args"]


def default(cls: type, name: str) -> Any:
    """The default of an options field, as written in its dataclass."""
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"a share between 0 and 1, not {text}")
    return value


class _Deprecated(argparse.Action):
    """An old spelling: stores into the new option's place and says so once, on stderr."""

    def __init__(self, option_strings: Sequence[str], dest: str, instead: str = "", **kwargs: Any):
        self.instead = instead
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option_string: Optional[str] = None) -> None:
        print(f"warning: {option_string} is deprecated; use {self.instead}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def encoder_args(p: argparse.ArgumentParser, one: bool = False, extra_help: str = "") -> None:
    if one:
        p.add_argument("--encoder", metavar="NAME", help=f"the encoder (default: {DEFAULT_ENCODER}); see `app.py encoders`")
        return
    p.add_argument(
        "--encoder",
        nargs="+",
        metavar="NAME",
        help=f"one or more encoders, by name or as a comma list (default: {DEFAULT_ENCODER}); see `app.py encoders`{extra_help}",
    )
    p.add_argument("--encoders", nargs="+", dest="encoder", action=_Deprecated, instead="--encoder NAME…", help=argparse.SUPPRESS)


def model_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        action="append",
        metavar="[ENCODER=]CHECKPOINT",
        help="checkpoint override (repeatable): ENCODER=CHECKPOINT, or a bare CHECKPOINT where one "
        "encoder is named; a hub id of the same architecture or a local folder",
    )


def store_args(p: argparse.ArgumentParser, store_default: str = "./workspace") -> None:
    p.add_argument("--store", type=Path, help=f"embedded Qdrant data folder (default: {store_default})")
    p.add_argument("--qdrant-url", help="use a Qdrant server instead, e.g. http://localhost:6333 (default: $QDRANT_URL)")
    p.add_argument("--qdrant-api-key", help=argparse.SUPPRESS)  # deprecated: visible in ps (secret_options.py)
    p.add_argument(
        "--qdrant-api-key-file",
        type=Path,
        metavar="FILE",
        help="file holding the Qdrant server's API key (default: $QDRANT_API_KEY, or the file $QDRANT_API_KEY_FILE)",
    )


def metrics_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--metrics",
        action="store_true",
        help="every process serves Prometheus metrics on loopback, read with a bearer token (docs/metrics.md); prints their addresses",
    )
    p.add_argument(
        "--metrics-token-file",
        type=Path,
        metavar="FILE",
        help="file holding the metrics read token (implies --metrics; default: $IMGSEARCH_METRICS_TOKEN)",
    )


def host_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", help="a running flow's gateway, e.g. grpc://HOST:PORT (default: start the flow locally)")


def runtime_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--runtime",
        choices=RUNTIME_CHOICES,
        help="where the encoders run: torch, onnx (ONNX Runtime), torch-bf16, onnx-int8, or auto "
        "(default: $ENCODER_RUNTIME, else auto = onnx on CPU, torch on CUDA)",
    )


def resize_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--resize", type=int, metavar="N", help="normalise every image to N×N first (the original meme study used 96); default: keep aspect"
    )


def json_arg(p: argparse.ArgumentParser, what: str = "print one JSON document instead of the human summary") -> None:
    p.add_argument("--json", action="store_true", help=what)
