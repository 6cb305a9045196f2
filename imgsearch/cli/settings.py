"""Parsed arguments → one options value per command, resolved once before any command runs.

This is the only module that reads an argparse namespace. An option the user did not give is
absent from it (the parser's defaults are SUPPRESS), so every default comes from the options
class. Names and ``--model`` overrides are checked here, so a mistake is one clear error
before anything starts.
"""

import argparse
import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

from executors.encoders.resolve import parse_model_overrides
from executors.encoders.specs import DEFAULT_ENCODER, get_spec
from executors.errors import UserError
from imgsearch import options as o
from imgsearch.exposure import GatewayExposure
from imgsearch.secret_options import metrics_token, qdrant_key


@dataclass(frozen=True)
class Invocation:
    """What main() runs: a command's name and its options."""

    command: str
    options: Any
    verbose: bool = False
    json: bool = False  # errors are printed as one JSON document too


def encoder_names(values: Optional[list[str]], default: tuple[str, ...] = (DEFAULT_ENCODER,)) -> tuple[str, ...]:
    """``--encoder a b`` or ``--encoder a,b``: known names, each once."""
    names = [n for v in values or [] for n in v.replace(",", " ").split() if n]
    if not names:
        return default
    for name in names:
        get_spec(name)  # unknown names fail before anything starts
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UserError(f"{', '.join(twice)} named twice in --encoder")
    return tuple(names)


def _given(ns: argparse.Namespace, cls: type, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """The namespace's values for ``cls``'s fields (those the user gave)."""
    fields = {f.name for f in dataclasses.fields(cls)} - set(skip)
    return {k: v for k, v in vars(ns).items() if k in fields}


def _store(ns: argparse.Namespace, base: Optional[o.StoreOptions] = None) -> o.StoreOptions:
    given = _given(ns, o.StoreOptions, skip=("qdrant_api_key",))
    key = qdrant_key(getattr(ns, "qdrant_api_key", None), getattr(ns, "qdrant_api_key_file", None))
    if key:
        given["qdrant_api_key"] = key
    return dataclasses.replace(base or o.StoreOptions(), **given)


def _index(ns: argparse.Namespace) -> o.IndexOptions:
    encoders = encoder_names(getattr(ns, "encoder", None))
    progress = not (getattr(ns, "json", False) or getattr(ns, "no_progress", False))
    return o.IndexOptions(
        **_given(ns, o.IndexOptions, skip=("store",)),
        encoders=encoders,
        progress=progress,
        models=parse_model_overrides(getattr(ns, "model", None), encoders),
        store=_store(ns),
    )


def _search(ns: argparse.Namespace) -> o.SearchOptions:
    encoder = encoder_names([ns.encoder] if hasattr(ns, "encoder") else None)[0]
    model = parse_model_overrides(getattr(ns, "model", None), [encoder]).get(encoder)
    if getattr(ns, "top_k", 1) < 1:
        raise UserError("--top-k must be at least 1")
    return o.SearchOptions(**_given(ns, o.SearchOptions, skip=("store", "encoder", "model")), encoder=encoder, model=model, store=_store(ns))


def _stats(ns: argparse.Namespace) -> o.StatsOptions:
    return o.StatsOptions(**_given(ns, o.StatsOptions, skip=("store",)), store=_store(ns))


def _demo(ns: argparse.Namespace) -> o.DemoOptions:
    return o.DemoOptions(**_given(ns, o.DemoOptions, skip=("store",)), store=_store(ns))


def _plain(cls: type) -> Callable[[argparse.Namespace], Any]:
    return lambda ns: cls(**_given(ns, cls))


def _k8s(ns: argparse.Namespace) -> o.K8sOptions:
    from imgsearch.deploy.autoscaling import resolve  # the autoscalers' values, checked once here
    from imgsearch.deploy.monitoring import check_namespace

    encoders = encoder_names(getattr(ns, "encoder", None), default=o.K8sOptions.encoders)
    given = _given(ns, o.K8sOptions, skip=("encoders",))
    for key in ("min_replicas", "max_replicas", "target_inflight"):
        if key in given:
            given[key] = tuple(given[key])
    try:
        resolve(
            ["normalizer", *(f"encoder-{e}" for e in encoders)],
            given.get("min_replicas", ()),
            given.get("max_replicas", ()),
            given.get("target_inflight", ()),
        )
        check_namespace(given.get("prometheus_namespace", o.K8sOptions.prometheus_namespace))
    except ValueError as exc:
        raise UserError(str(exc)) from None
    return o.K8sOptions(**given, encoders=encoders)


def _up(ns: argparse.Namespace) -> o.UpOptions:
    encoders = encoder_names(getattr(ns, "encoder", None))
    exposure = GatewayExposure(**{k: v for k, v in (("tls_cert", getattr(ns, "tls_cert", None)), ("tls_key", getattr(ns, "tls_key", None))) if v})
    return o.UpOptions(
        **_given(ns, o.UpOptions, skip=("store", "exposure", "metrics_token")),
        encoders=encoders,
        exposure=exposure,
        metrics_token=metrics_token(getattr(ns, "metrics", False), getattr(ns, "metrics_token_file", None)),
        models=parse_model_overrides(getattr(ns, "model", None), encoders),
        store=_store(ns),
    )


def _serve(ns: argparse.Namespace) -> o.ServeOptions:
    encoders = encoder_names(getattr(ns, "encoder", None), default=())
    named = encoders or (DEFAULT_ENCODER,)
    opts = o.ServeOptions(
        **_given(ns, o.ServeOptions, skip=("store", "encoders", "reports", "hosts", "verbose", "allow_hosts")),
        encoders=encoders,
        models=parse_model_overrides(getattr(ns, "model", None), named),
        reports=tuple(getattr(ns, "reports", ())),
        hosts=tuple(getattr(ns, "hosts", ())),
        allow_hosts=tuple(getattr(ns, "allow_hosts", ())),
        store=_store(ns),
        verbose=ns.verbose,
    )
    if opts.top_k < 1:
        raise UserError("--top-k must be at least 1")
    if opts.max_upload_mb <= 0:
        raise UserError("--max-upload-mb must be positive")
    return opts


def _compare(ns: argparse.Namespace) -> Any:
    from imgsearch.compare.options import CompareOptions, parse_encoders, split_entry

    entries = parse_encoders(",".join(getattr(ns, "encoder", None) or [DEFAULT_ENCODER]))
    server = _store(ns)  # the embedded folder's default is compare's own: OUT/store
    given = _given(ns, CompareOptions, skip=("encoders", "models", "qdrant_url", "qdrant_api_key"))
    return CompareOptions(
        **given,
        encoders=entries,
        qdrant_url=server.qdrant_url,
        qdrant_api_key=server.qdrant_api_key,
        models=parse_model_overrides(getattr(ns, "model", None), sorted({split_entry(e)[0] for e in entries})),
        progress=not (getattr(ns, "json", False) or getattr(ns, "no_progress", False)),
    )


def _bench(ns: argparse.Namespace) -> Any:
    from imgsearch.bench.options import BenchOptions

    encoders = list(encoder_names(getattr(ns, "encoder", None), default=tuple(BenchOptions().encoders)))
    opts = BenchOptions(
        **_given(ns, BenchOptions, skip=("encoders", "models")), encoders=encoders, models=parse_model_overrides(getattr(ns, "model", None), encoders)
    )
    return opts.quick_run() if getattr(ns, "quick", False) else opts


BUILDERS: dict[str, Callable[[argparse.Namespace], Any]] = {
    "index": _index,
    "search": _search,
    "stats": _stats,
    "sample": _plain(o.SampleOptions),
    "demo": _demo,
    "encoders": _plain(o.EncodersOptions),
    "k8s": _k8s,
    "compare": _compare,
    "serve": _serve,
    "up": _up,
    "bench": _bench,
    "tiny-models": _plain(o.TinyModelsOptions),
    "export-fashion-mnist": _plain(o.FashionMnistOptions),
}


def resolve(ns: argparse.Namespace, argv: Sequence[str] = ()) -> Invocation:
    """The namespace of ``build_parser().parse_args(argv)`` → the command's options."""
    json = bool(getattr(ns, "json", False))
    options = BUILDERS[ns.command](ns)
    if ns.command == "compare":  # the report says how it was made
        options = dataclasses.replace(options, argv=["app.py", *argv])
    return Invocation(ns.command, options, verbose=ns.verbose, json=json)
