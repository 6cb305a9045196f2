"""What a compare run is asked to do: its options, checked before anything starts."""

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from executors.encoders.resolve import CheckpointError, resolve_checkpoint
from executors.encoders.runtime_env import RUNTIMES
from executors.encoders.specs import DEFAULT_ENCODER, get_spec
from executors.errors import UserError
from executors.urls import DataSource
from imgsearch.compare.cost import VERTEX_PRICE_PER_1000
from imgsearch.options import SAMPLE_DATA

logger = logging.getLogger(__name__)


class CompareError(UserError, ValueError):
    """A mistake in the compare options (exit code 2)."""


@dataclass
class CompareOptions:
    data: DataSource = SAMPLE_DATA  # a folder, or a URL such as s3://bucket/prefix
    encoders: list[str] = field(default_factory=lambda: [DEFAULT_ENCODER])  # entries: ENCODER[@RUNTIME]
    out: Path = Path("results/compare")
    models: dict[str, str] = field(default_factory=dict)
    tiny_models: Optional[Path] = None
    queries: Optional[Path] = None
    query_fraction: float = 0.2
    max_queries: int = 2000
    captions: Optional[Path] = None
    top_k: int = 10
    score_depth: int = 1000
    grid_rows: int = 24
    grid_k: int = 5
    batch_size: Optional[int] = None  # images per request; None: each encoder's own batch
    resize: Optional[int] = None
    store: Optional[Path] = None
    qdrant_url: Optional[str] = None
    qdrant_api_key: Optional[str] = None
    runtime: Optional[str] = None  # of entries without @runtime; None: $ENCODER_RUNTIME, else auto
    vertex_project: Optional[str] = None
    vertex_region: Optional[str] = None
    vertex_price: float = VERTEX_PRICE_PER_1000  # USD per 1,000 images, for the cost table
    fresh: bool = False  # drop the compared collections and cached evaluations first
    bootstrap: int = 1000  # resamples for every confidence interval
    index_check: bool = True  # measure HNSW / int8 / binary recall@10 against exact search (quantization.py)
    progress: bool = True
    json: bool = False  # print report.json on stdout
    # near-duplicates left out of a query's candidates (keep|exclude), their threshold; zero-shot prompts
    near_duplicates: str = "exclude"
    near_duplicate_threshold: float = 0.96
    prompts: Optional[Path] = None
    argv: list[str] = field(default_factory=list)

    def check(self) -> None:
        self.encoders = parse_encoders(",".join(self.encoders))  # as the command line's: checked, runtimes lower case
        if not isinstance(self.data, str) and not self.data.is_dir():  # a URL: the loader lists it
            raise CompareError(f"data folder not found: {self.data}")
        if self.queries is not None and not self.queries.is_dir():
            raise CompareError(f"query folder not found: {self.queries}")
        if self.captions is not None and not self.captions.is_file():
            raise CompareError(f"captions file not found: {self.captions}")
        if not 0 < self.query_fraction <= 1:
            raise CompareError("--query-fraction must be in (0, 1]")
        if self.max_queries < 1:
            raise CompareError("--max-queries must be at least 1")
        if self.top_k < 1 or self.grid_k < 1:
            raise CompareError("--top-k and --grid-k must be at least 1")
        if self.vertex_price < 0:
            raise CompareError("--vertex-price cannot be negative")
        if self.grid_rows < 0:
            raise CompareError("--grid-rows cannot be negative")
        if self.near_duplicates not in ("keep", "exclude"):
            raise CompareError("--near-duplicates must be keep or exclude")
        if not 0 < self.near_duplicate_threshold <= 1:
            raise CompareError("--near-duplicate-threshold must be in (0, 1]")
        if self.prompts is not None:
            from imgsearch.compare.zero_shot import PromptError, load_templates

            try:
                load_templates(self.prompts)
            except PromptError as exc:
                raise CompareError(str(exc)) from exc

    def settings_key(self) -> dict[str, Any]:
        """The settings an encoder's cached evaluation depends on (besides its collection)."""
        return {
            "queries": str(self.queries) if self.queries else None,
            "query_fraction": self.query_fraction,
            "max_queries": self.max_queries,
            "captions": str(self.captions) if self.captions else None,
            "top_k": self.top_k,
            "score_depth": self.score_depth,
            "resize": self.resize,
            "bootstrap": self.bootstrap,
            "index_check": self.index_check,
            "near_duplicates": self.near_duplicates,
            "near_duplicate_threshold": self.near_duplicate_threshold,
            "prompts": self.prompts.read_text(encoding="utf-8") if self.prompts else None,
        }


def split_entry(entry: str) -> tuple[str, str | None]:
    """``efficientnet-lite0@onnx-int8`` → (encoder, runtime); no ``@`` → (encoder, None): the
    runtime of --runtime / $ENCODER_RUNTIME / auto."""
    encoder, sep, runtime = entry.partition("@")
    return encoder, (runtime if sep else None)


def _normal(entry: str) -> str:
    encoder, runtime = split_entry(entry)
    return encoder if runtime is None else f"{encoder}@{runtime.lower()}"


def parse_encoders(text: str) -> list[str]:
    """``--encoders``: compared entries, each an encoder name with an optional ``@runtime``."""
    entries = [_normal(n.strip()) for n in text.replace(" ", ",").split(",") if n.strip()]
    if not entries:
        raise CompareError("--encoders needs at least one name")
    for entry in entries:
        encoder, runtime = split_entry(entry)
        get_spec(encoder)  # unknown names fail before anything starts
        if runtime is None:
            continue
        if runtime not in RUNTIMES:
            raise CompareError(
                f"unknown runtime '{runtime}' in '{entry}': after '@' name one of {', '.join(RUNTIMES)} "
                "(leave the suffix off for --runtime, else auto)"
            )
        if not get_spec(encoder).local_model:
            raise CompareError(f"'{entry}': {encoder} runs as a remote service, so it has no runtime to choose")
    twice = sorted(e for e, n in Counter(entries).items() if n > 1)
    if twice:
        raise CompareError(f"{', '.join(twice)} named twice in --encoders {text} (one encoder on several runtimes: give each its own @runtime)")
    return entries


def choose_checkpoint(encoder: str, opts: CompareOptions) -> tuple[Optional[str], str]:
    """(checkpoint override or None for the default, note); raises with the reason to skip."""
    override = opts.models.get(encoder)
    if get_spec(encoder).family == "vertex":
        # Here, not at the top: the Vertex client pulls in google-auth, which most runs never need.
        from executors.encoders.vertex import resolve_settings

        resolve_settings(opts.vertex_project, opts.vertex_region, model=override)  # raises VertexConfigError
        return override, "cloud API"
    if override:
        resolve_checkpoint(encoder, override)
        return override, "given with --model"
    try:
        resolve_checkpoint(encoder)
        return None, "default checkpoint"
    except CheckpointError as exc:
        from imgsearch.tiny_models import TINY_KIND  # here: transformers' model classes, only for this

        kind = TINY_KIND.get(encoder)
        tiny = opts.tiny_models / kind if opts.tiny_models and kind else None
        if tiny is not None and (tiny / "config.json").is_file():
            return str(tiny), f"default checkpoint unreachable, tiny random stand-in used ({str(exc)[:160]})"
        raise
