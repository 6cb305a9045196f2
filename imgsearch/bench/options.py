"""What a bench run is asked to measure; its defaults are written here only."""

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional


@dataclass(frozen=True)
class BenchOptions:
    encoders: list[str] = field(default_factory=lambda: ["clip", "efficientnet-lite0"])
    models: dict[str, str] = field(default_factory=dict)  # encoder -> checkpoint override
    data: Optional[Path] = None  # images to measure on (default: data/memes, else synthetic)
    images: int = 256
    batch_sizes: list[int] = field(default_factory=lambda: [8, 16, 32])
    bare_seconds: float = 8.0
    rounds: int = 3  # warm end-to-end runs, each between two bare-model runs
    search_queries: int = 50
    clients: int = 8
    per_client: int = 25
    store_sizes: list[int] = field(default_factory=lambda: [10_000, 100_000])
    local_size: int = 10_000
    growth: list[int] = field(default_factory=lambda: [1_000, 10_000, 100_000])
    growth_encoder: str = "clip"
    growth_model: Optional[str] = None  # default: the tiny CLIP (data/tiny-models/clip)
    prune_sizes: list[int] = field(default_factory=lambda: [10_000, 100_000])  # `index --prune` over stored images
    out: Path = Path("results/bench")
    cache: Path = Path("data/bench")
    runtimes: list[str] = field(default_factory=lambda: ["torch-plain", "torch", "onnx", "onnx-int8"])  # bare, side by side
    script_images: int = 1200  # app.py index vs the plain torch script on this many images (0 = skip)
    lanes: str = "auto"  # encoder lanes while indexing end to end, as `app.py index` asks for
    runtime: Optional[str] = None  # the flows' encoders' runtime; None: $ENCODER_RUNTIME, else auto
    json: bool = False  # print bench.json on stdout (the tables go to stderr)
    # The scale-out alone (imgsearch/bench/scaleout.py), when set: encoder replicas that each
    # hold a batch this many ms, as a GPU would, with almost no CPU; the other sections are skipped.
    simulate_gpu_ms: Optional[float] = None
    encoder_replicas: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    simulate_batch: int = 16  # images per request and per simulated batch
    next_stage_replicas: int = 2  # then the busiest CPU stage with this many replicas, measured again (0 or 1: skip)

    def __post_init__(self) -> None:
        from executors.errors import UserError

        if self.simulate_gpu_ms is not None and not 0 < self.simulate_gpu_ms <= 60_000:
            raise UserError(f"--simulate-gpu-ms must be within (0, 60000], not {self.simulate_gpu_ms:g}")
        if not self.encoder_replicas or any(not 1 <= n <= 64 for n in self.encoder_replicas):
            raise UserError(f"--encoder-replicas: counts within 1..64, not {self.encoder_replicas}")
        if len(set(self.encoder_replicas)) != len(self.encoder_replicas):
            raise UserError(f"--encoder-replicas: each count once, not {self.encoder_replicas}")
        if not 1 <= self.simulate_batch <= 1024 or not 0 <= self.next_stage_replicas <= 64:
            raise UserError("--simulate-batch must be within 1..1024 and --next-stage-replicas within 0..64")

    def quick_run(self) -> "BenchOptions":
        """The options of ``--quick``: every section, at sizes that take seconds."""
        return dataclasses.replace(
            self,
            images=min(self.images, 32),
            batch_sizes=[8, 16],
            bare_seconds=0.5,
            rounds=2,
            runtimes=[r for r in self.runtimes if r not in ("onnx-int8", "torch-plain")],
            script_images=min(self.script_images, 48),
            search_queries=5,
            clients=min(self.clients, 2),
            per_client=3,
            store_sizes=[2_000],
            local_size=0,
            growth=[100, 300],
            prune_sizes=[2_000],
        )
