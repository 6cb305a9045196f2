"""`app.py serve`: start the flow(s) (or reach running gateways), then the page on localhost."""

import argparse
import contextlib
import logging
import os
import socket
from pathlib import Path
from typing import Iterator, TextIO

from executors.encoders.resolve import parse_model_overrides, resolve_checkpoint
from executors.encoders.specs import DEFAULT_ENCODER, get_spec
from executors.errors import UserError

logger = logging.getLogger(__name__)


def parse_encoder_names(values: list[str]) -> list[str]:
    """``--encoders a b`` or ``--encoders a,b``; unknown names fail before anything starts."""
    names = [n for v in values for n in v.replace(",", " ").split() if n]
    for name in names:
        get_spec(name)
    if len(set(names)) != len(names):
        raise UserError(f"an encoder is named twice in --encoders {' '.join(values)}")
    return names or [DEFAULT_ENCODER]


@contextlib.contextmanager
def gateways(args: argparse.Namespace) -> Iterator[dict[str, str]]:
    """{encoder: gateway address}: the user's gateways (--host) or flows started here."""
    # Here, not at the top: the CLI imports this module to build its parser, and the flow's
    # modules load torch and jina (seconds that `app.py --help` or a mistyped option need not wait).
    from imgsearch.flow import Gateway, local_flows
    from imgsearch.indexing import encoder_info

    if args.host:
        hosts = {}
        for host in args.host:
            gateway = Gateway(host)
            if not gateway.ready():
                raise UserError(f"no flow is answering at {host} (is the gateway running and reachable?)")
            hosts[encoder_info(gateway)["encoder"]] = host
        wanted = parse_encoder_names(args.encoders) if args.encoders else list(hosts)
        missing = [n for n in wanted if n not in hosts]
        if missing:
            raise UserError(f"no gateway given with --host serves {', '.join(missing)} (they serve {', '.join(hosts)})")
        yield {n: hosts[n] for n in wanted}
        return
    names = parse_encoder_names(args.encoders or [])
    models = parse_model_overrides(args.model, names)
    for name in names:
        resolve_checkpoint(name, models.get(name))  # one clear error before any flow starts
    with local_flows([(n, models.get(n)) for n in names], store=args.store, qdrant_url=args.qdrant_url,
                     resize=args.resize) as hosts:
        yield hosts


def default_reports(args: argparse.Namespace) -> list[Path]:
    """--report files, else any compare report beside the store or under ./results."""
    if args.report:
        missing = [str(p) for p in args.report if not p.is_file()]
        if missing:
            raise UserError(f"report not found: {', '.join(missing)}")
        return list(args.report)
    found = [Path(args.store).resolve().parent / "report.json"] if not args.qdrant_url else []
    found += sorted(p.resolve() for p in Path("results").glob("**/report.json"))
    return [p for p in dict.fromkeys(found) if p.is_file()]


def cmd_serve(args: argparse.Namespace, out: TextIO) -> int:
    # The web stack (uvicorn, FastAPI) only for `serve`: cli imports this module for its arguments.
    import uvicorn

    from imgsearch.web.server import PageOptions, create_app
    from imgsearch.web.service import SearchService
    from imgsearch.web.thumbs import ThumbCache

    if args.top_k < 1:
        raise UserError("--top-k must be at least 1")
    if args.max_upload_mb <= 0:
        raise UserError("--max-upload-mb must be positive")
    reports = default_reports(args)
    _check_port(args.bind, args.port)  # a port in use is one clear error before any flow starts
    with gateways(args) as hosts:
        # Bound after the flows have started: forked executors must not inherit the socket.
        sock = _listen(args.bind, args.port)
        service = SearchService(hosts, resize=args.resize, reports=tuple(reports), default_dataset=args.dataset)
        cache = args.thumb_cache or (Path(args.store) / "thumbs" if not (args.qdrant_url or args.host) else Path(".cache/thumbs"))
        app = create_app(service, ThumbCache(cache), PageOptions(top_k=args.top_k, max_upload_bytes=int(args.max_upload_mb * 1e6),
                                                                allowed_hosts=(args.bind, *(args.allow_host or ()))))
        address = f"http://{'localhost' if args.bind in ('127.0.0.1', '0.0.0.0') else args.bind}:{sock.getsockname()[1]}/"
        print(f"Search page: {address}  (encoders: {', '.join(f'{n} at {h}' for n, h in hosts.items())}; Ctrl-C stops)", file=out)
        for report in reports:
            print(f"  thresholds from {report}", file=out)
        out.flush()
        config = uvicorn.Config(app, log_level="info" if args.verbose else "warning", access_log=args.verbose)
        try:
            uvicorn.Server(config).run(sockets=[sock])
        finally:
            service.close()
            sock.close()
    return 0


def _listen(bind: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((bind, port))
    except OSError as exc:
        sock.close()
        raise UserError(f"cannot listen on {bind}:{port}: {exc.strerror or exc} (pick another --port)") from None
    return sock


def _check_port(bind: str, port: int) -> None:
    if port:
        _listen(bind, port).close()


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--encoders", nargs="+", metavar="NAME", help=f"encoders to serve, e.g. efficientnet-lite0 clip (default: {DEFAULT_ENCODER}; with --host: what the gateways serve)")
    p.add_argument("--model", action="append", metavar="ENCODER=CHECKPOINT", help="checkpoint override per encoder (repeatable): hub id or local folder")
    p.add_argument("--port", type=int, default=8000, help="the page's port (default 8000; 0 = any free port)")
    p.add_argument("--bind", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--allow-host", action="append", metavar="NAME", help="a Host name the page answers besides localhost, 127.0.0.1 and --bind (repeatable; e.g. the machine's name when --bind 0.0.0.0)")
    p.add_argument("--dataset", help="dataset shown first (default: the one most encoders have indexed)")
    p.add_argument("--top-k", type=int, default=12, help="results per page (\"more\" fetches the next ones)")
    p.add_argument("--report", type=Path, action="append", metavar="JSON", help="compare report(s) whose suggested thresholds dim weaker results (default: report.json beside the store and under ./results)")
    p.add_argument("--max-upload-mb", type=float, default=20.0, help="largest accepted upload (default 20 MB)")
    p.add_argument("--thumb-cache", type=Path, metavar="DIR", help="thumbnail cache (default: STORE/thumbs)")
    p.add_argument("--resize", type=int, metavar="N", help="search the collections indexed with --resize N")
    p.add_argument("--store", default="workspace", help="embedded Qdrant data folder (default: ./workspace)")
    p.add_argument("--qdrant-url", default=os.environ.get("QDRANT_URL"), help="use a Qdrant server instead, e.g. http://localhost:6333")
    p.add_argument("--host", nargs="+", metavar="GRPC_URL", help="running gateways, one per encoder (e.g. grpc://HOST:PORT), instead of starting flows")
