"""`app.py up`: one or more encoders' flows as a long-lived gRPC server, until SIGTERM or Ctrl-C.

Replaces typing six environment variables in front of `jina flow`: the flows are the ones
`app.py index` starts (imgsearch/flow.py local_flows: one gateway per encoder, shared loader,
normaliser and indexer), listening on loopback unless ``--bind`` exposes the gateways.
"""

import logging
import os
import signal
import sys
import threading
from typing import Any, TextIO

from executors.auth import TOKEN_ENV
from executors.encoders.resolve import resolve_checkpoint
from imgsearch.exposure import LOOPBACK
from imgsearch.options import UpOptions

logger = logging.getLogger(__name__)


def serve_flows(opts: UpOptions, out: TextIO) -> int:
    for name in opts.encoders:
        resolve_checkpoint(name, opts.models.get(name))  # one clear error before anything starts
    if opts.bind not in (LOOPBACK, "localhost", "::1") and not os.environ.get(TOKEN_ENV):
        print(
            f"warning: the gateways listen on {opts.bind} with no {TOKEN_ENV} set: anyone who can reach them "
            "can index, delete and read files through them; set a token (docs/deploy.md)",
            file=sys.stderr,
        )
    from imgsearch.flow import FlowConfig, local_flows  # here: jina and docarray, only once flows start

    config = FlowConfig(
        opts.encoders[0],
        **opts.store.flow_settings(),
        resize=opts.resize,
        runtime=opts.runtime,
        bind=opts.bind,
        port=opts.port,
        exposure=opts.exposure,
        metrics_token=opts.metrics_token,
    )
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        flows: dict[str, Any] = {}
        with local_flows([(n, opts.models.get(n)) for n in opts.encoders], config, started=flows) as hosts:
            _announce(hosts, opts.bind, out)
            if opts.metrics_token is not None:
                _announce_metrics(flows, out)
            print("Serving gRPC until SIGTERM or Ctrl-C.", file=out)
            out.flush()
            while not stop.wait(1.0):
                pass
            print("stopping: closing the flows", file=sys.stderr)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def _announce_metrics(flows: dict[str, Any], out: TextIO) -> None:
    """Every process's metrics endpoint: the shared stages once (they run in the first flow)."""
    from imgsearch.metrics_scrape import metrics_addresses

    for encoder, flow in flows.items():
        for stage, urls in metrics_addresses(flow).items():
            for url in urls:
                print(f"metrics  {encoder:<20} {stage:<11} {url}", file=out)


def _announce(hosts: dict[str, str], bind: str, out: TextIO) -> None:
    from imgsearch.flow import Gateway

    collections = Gateway(next(iter(hosts.values()))).collections()
    for encoder, host in hosts.items():
        info = Gateway(host).encoder_info()
        names = [c.name for c in collections if c.model == info.model]
        print(f"{encoder:<20} {host}  (listening on {bind})  collections: {', '.join(names) or 'none yet'}", file=out)
