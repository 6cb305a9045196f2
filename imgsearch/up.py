"""`app.py up`: one or more encoders' flows as a long-lived gRPC server, until SIGTERM or Ctrl-C.

Replaces typing six environment variables in front of `jina flow`: the flows are the ones
`app.py index` starts (imgsearch/flow.py local_flows: one gateway per encoder, shared loader,
normaliser and indexer), listening on loopback unless ``--bind`` exposes the gateways.
"""

import argparse
import logging
import os
import signal
import sys
import threading
from typing import Optional, TextIO

from executors.auth import TOKEN_ENV
from executors.encoders.resolve import resolve_checkpoint
from executors.encoders.specs import DEFAULT_ENCODER, get_spec
from executors.errors import UserError
from imgsearch.exposure import LOOPBACK, TLS_CERT_ENV, TLS_KEY_ENV

logger = logging.getLogger(__name__)

DEFAULT_PORT = 8080


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--encoder", nargs="+", default=[DEFAULT_ENCODER], metavar="NAME", help=f"one or more encoders (default: {DEFAULT_ENCODER})")
    p.add_argument("--model", action="append", metavar="ENCODER=CHECKPOINT", help="checkpoint override per encoder (repeatable)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"the first gateway's port; the next encoders get the next ports (default {DEFAULT_PORT})")
    p.add_argument("--bind", default=LOOPBACK, metavar="ADDRESS",
                   help="the address the gateways listen on (default 127.0.0.1: this machine only); executors always stay on loopback")
    p.add_argument("--tls-cert", help=f"serve gRPC over TLS with this certificate (PEM; or {TLS_CERT_ENV})")
    p.add_argument("--tls-key", help=f"the certificate's private key (PEM; or {TLS_KEY_ENV})")
    p.add_argument("--resize", type=int, metavar="N", help="normalise every image to N×N first")
    p.add_argument("--store", default="workspace", help="embedded Qdrant data folder (default: ./workspace)")
    p.add_argument("--qdrant-url", default=os.environ.get("QDRANT_URL"), help="use a Qdrant server instead")


def cmd_up(args: argparse.Namespace, out: TextIO) -> int:
    models = _models(args.model)
    for name in args.encoder:
        get_spec(name)
        resolve_checkpoint(name, models.get(name))  # one clear error before anything starts
    if args.tls_cert or args.tls_key:
        if not (args.tls_cert and args.tls_key):
            raise UserError("TLS needs both --tls-cert and --tls-key")
        os.environ[TLS_CERT_ENV], os.environ[TLS_KEY_ENV] = args.tls_cert, args.tls_key
    if args.bind not in (LOOPBACK, "localhost", "::1") and not os.environ.get(TOKEN_ENV):
        print(f"warning: the gateways listen on {args.bind} with no {TOKEN_ENV} set: anyone who can reach them "
              "can index, delete and read files through them; set a token (docs/deploy.md)", file=sys.stderr)
    from imgsearch.flow import local_flows  # here: the CLI imports this module for its parser

    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with local_flows([(n, models.get(n)) for n in args.encoder], store=args.store, qdrant_url=args.qdrant_url,
                         resize=args.resize, bind=args.bind, port=args.port) as hosts:
            _announce(hosts, args.bind, out)
            while not stop.wait(1.0):
                pass
            print("stopping: closing the flows", file=sys.stderr)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def _announce(hosts: dict[str, str], bind: str, out: TextIO) -> None:
    from imgsearch.flow import Gateway

    collections = Gateway(next(iter(hosts.values()))).call("/stats").get("collections", [])
    for encoder, host in hosts.items():
        info = Gateway(host).call("/info")
        names = [c["name"] for c in collections if c.get("model") == info.get("model")]
        print(f"{encoder:<20} {host}  (listening on {bind})  collections: {', '.join(names) or 'none yet'}", file=out)
    print("Serving gRPC until SIGTERM or Ctrl-C.", file=out)
    out.flush()


def _models(items: Optional[list[str]]) -> dict[str, str]:
    models = {}
    for item in items or []:
        encoder, sep, checkpoint = item.partition("=")
        if not sep or not checkpoint:
            raise UserError(f"--model expects ENCODER=CHECKPOINT, got {item!r}")
        models[encoder] = checkpoint
    return models
