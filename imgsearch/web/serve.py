"""`app.py serve`: start the flow(s) (or reach running gateways), then the page on localhost."""

import contextlib
import logging
import socket
from pathlib import Path
from typing import Iterator, TextIO

from executors.encoders.resolve import resolve_checkpoint
from executors.encoders.specs import DEFAULT_ENCODER
from executors.errors import UserError
from imgsearch.options import ServeOptions

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def gateways(opts: ServeOptions) -> Iterator[dict[str, str]]:
    """{encoder: gateway address}: the user's gateways (--host) or flows started here."""
    # Here, not at the top: the CLI imports this module to build its parser, and the flow's
    # modules load torch and jina (seconds that `app.py --help` or a mistyped option need not wait).
    from imgsearch.flow import FlowConfig, Gateway, local_flows

    if opts.hosts:
        hosts = {}
        for host in opts.hosts:
            gateway = Gateway(host)
            if not gateway.ready():
                raise UserError(f"no flow is answering at {host} (is the gateway running and reachable?)")
            hosts[gateway.encoder_info().encoder] = host
        wanted = list(opts.encoders or hosts)
        missing = [n for n in wanted if n not in hosts]
        if missing:
            raise UserError(f"no gateway given with --host serves {', '.join(missing)} (they serve {', '.join(hosts)})")
        yield {n: hosts[n] for n in wanted}
        return
    names = list(opts.encoders or (DEFAULT_ENCODER,))
    for name in names:
        resolve_checkpoint(name, opts.models.get(name))  # one clear error before any flow starts
    config = FlowConfig(
        names[0],
        **opts.store.flow_settings(),
        resize=opts.resize,
        runtime=opts.runtime,
    )
    with local_flows([(n, opts.models.get(n)) for n in names], config) as hosts:
        yield hosts


def default_reports(opts: ServeOptions) -> list[Path]:
    """--report files, else any compare report beside the store or under ./results."""
    if opts.reports:
        missing = [str(p) for p in opts.reports if not p.is_file()]
        if missing:
            raise UserError(f"report not found: {', '.join(missing)}")
        return list(opts.reports)
    found = [Path(opts.store.store).resolve().parent / "report.json"] if not opts.store.qdrant_url else []
    found += sorted(p.resolve() for p in Path("results").glob("**/report.json"))
    return [p for p in dict.fromkeys(found) if p.is_file()]


def cmd_serve(opts: ServeOptions, out: TextIO) -> int:
    # The web stack (uvicorn, FastAPI) only for `serve`: cli imports this module for its arguments.
    import uvicorn

    from imgsearch.web.server import PageOptions, create_app
    from imgsearch.web.service import SearchService
    from imgsearch.web.thumbs import ThumbCache

    reports = default_reports(opts)
    _check_port(opts.bind, opts.port)  # a port in use is one clear error before any flow starts
    with gateways(opts) as hosts:
        # Bound after the flows have started: forked executors must not inherit the socket.
        sock = _listen(opts.bind, opts.port)
        service = SearchService(hosts, resize=opts.resize, reports=tuple(reports), default_dataset=opts.dataset)
        cache = opts.thumb_cache or (Path(opts.store.store) / "thumbs" if not (opts.store.qdrant_url or opts.hosts) else Path(".cache/thumbs"))
        app = create_app(
            service,
            ThumbCache(cache),
            PageOptions(top_k=opts.top_k, max_upload_bytes=int(opts.max_upload_mb * 1e6), allowed_hosts=(opts.bind, *opts.allow_hosts)),
        )
        address = f"http://{'localhost' if opts.bind in ('127.0.0.1', '0.0.0.0') else opts.bind}:{sock.getsockname()[1]}/"
        print(f"Search page: {address}  (encoders: {', '.join(f'{n} at {h}' for n, h in hosts.items())}; Ctrl-C stops)", file=out)
        for report in reports:
            print(f"  thresholds from {report}", file=out)
        out.flush()
        config = uvicorn.Config(app, log_level="info" if opts.verbose else "warning", access_log=opts.verbose)
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
