"""One gRPC connection per executor replica, found by name and kept current.

gRPC keeps one long-lived HTTP/2 connection per channel, and a Kubernetes ClusterIP Service
balances connections, not requests: a gateway with one channel to ``encoder-clip`` would send
every request to one pod. A headless Service's name instead resolves to every ready pod's
address. The gateway resolves each executor address that is a name into all of its addresses,
gives Jina's connection pool one connection per address (Jina then balances requests round
robin and retries a failed one on the next replica), and resolves again:

- every ``IMGSEARCH_RESOLVE_INTERVAL_S`` seconds (default 5): a new replica gets traffic
  within that time, one that went away stops getting any;
- at once (at most once a second) when a call to a replica fails as unreachable.

A lookup that fails or finds nothing keeps the connections there are: a DNS hiccup or a
moment with no ready pod must not leave the gateway with none to retry on.

``IMGSEARCH_NAMESERVER`` (``host[:port]``) sends the lookups to that DNS server instead of the
system's resolver: for a gateway outside the cluster's DNS, and for the loopback test that
plays a headless Service (tests/test_replicas.py).
"""

import asyncio
import ipaddress
import json
import logging
import os
import socket
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Optional

logger = logging.getLogger(__name__)

RESOLVE_INTERVAL_ENV = "IMGSEARCH_RESOLVE_INTERVAL_S"
NAMESERVER_ENV = "IMGSEARCH_NAMESERVER"
DEFAULT_RESOLVE_INTERVAL_S = 5.0
MIN_RESOLVE_GAP_S = 1.0  # failure-triggered lookups: at most one a second
LOOKUP_TIMEOUT_S = 2.0
MAX_REPLICAS = 256  # more addresses than this for one name is a misconfiguration, not a cluster


@dataclass(frozen=True)
class Target:
    """One configured executor address: ``[grpc[s]://]host:port``."""

    scheme: str  # "" or grpc / grpcs, kept on every resolved address (TLS stays TLS)
    host: str
    port: int

    @property
    def is_name(self) -> bool:
        try:
            ipaddress.ip_address(self.host)
            return False
        except ValueError:
            return True

    def address(self, host: str) -> str:
        where = f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"
        return f"{self.scheme}://{where}" if self.scheme else where

    @property
    def raw(self) -> str:
        return self.address(self.host)


def parse_target(address: str) -> Optional[Target]:
    """``grpc://encoder-clip.imgsearch.svc:8080`` → Target; None for what is not host:port."""
    scheme, sep, rest = address.partition("://")
    if not sep:
        scheme, rest = "", address
    host, _, port = rest.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or "/" in rest:
        return None
    return Target(scheme, host, int(port))


def nameserver() -> Optional[tuple[str, int]]:
    """``IMGSEARCH_NAMESERVER`` as (host, port); None: the system's resolver."""
    raw = os.environ.get(NAMESERVER_ENV, "").strip()
    if not raw:
        return None
    host, _, port = raw.rpartition(":") if raw.count(":") == 1 else (raw, "", "53")
    return host, int(port)


def resolve_interval() -> float:
    raw = os.environ.get(RESOLVE_INTERVAL_ENV, "").strip()
    try:
        return max(MIN_RESOLVE_GAP_S, float(raw)) if raw else DEFAULT_RESOLVE_INTERVAL_S
    except ValueError:
        logger.warning("%s=%r is not a number of seconds: using %.0f", RESOLVE_INTERVAL_ENV, raw, DEFAULT_RESOLVE_INTERVAL_S)
        return DEFAULT_RESOLVE_INTERVAL_S


def lookup(target: Target, server: Optional[tuple[str, int]] = None) -> list[str]:
    """Every address the target's name has now, sorted; raises OSError when the lookup fails."""
    if not target.is_name:
        return [target.raw]
    if server is None:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
        hosts = {str(info[4][0]) for info in infos}
    else:
        hosts = _ask(server, target.host)
    if len(hosts) > MAX_REPLICAS:
        raise OSError(f"{target.host} has {len(hosts)} addresses, more than the {MAX_REPLICAS} a gateway connects to")
    return sorted(target.address(h) for h in hosts)


def _ask(server: tuple[str, int], name: str) -> set[str]:
    """A and AAAA records of ``name`` at one DNS server."""
    import dns.exception
    import dns.message
    import dns.query
    import dns.rcode
    import dns.rdatatype

    found: set[str] = set()
    for kind in (dns.rdatatype.A, dns.rdatatype.AAAA):
        query = dns.message.make_query(name, kind)
        try:
            answer = dns.query.udp(query, server[0], port=server[1], timeout=LOOKUP_TIMEOUT_S)
        except (dns.exception.DNSException, OSError) as exc:
            raise OSError(f"DNS server {server[0]}:{server[1]} did not answer for {name}: {exc}") from exc
        if answer.rcode() not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            raise OSError(f"DNS server {server[0]}:{server[1]} answered {dns.rcode.to_text(answer.rcode())} for {name}")
        found.update(r.to_text() for rrset in answer.answer if rrset.rdtype == kind for r in rrset)
    return found


def grpc_addresses(deployments_addresses: Optional[str]) -> dict[str, list[str]]:
    """The gateway's ``deployments_addresses`` (JSON: name -> ["host:port", ...], or ->
    {protocol: [...]}) as name -> its gRPC addresses."""
    given = json.loads(deployments_addresses or "{}")
    return {d: list(a.get("grpc", []) if isinstance(a, dict) else a) for d, a in given.items()}


def expand(deployments_addresses: str, server: Optional[tuple[str, int]] = None) -> tuple[str, dict[str, list[Target]]]:
    """The gateway's ``deployments_addresses`` with every name replaced by its addresses now,
    and the named targets per deployment, for :class:`ReplicaWatcher`.

    A name that does not resolve yet stays as it is: gRPC then resolves it itself, and the
    watcher replaces it once the lookup works."""
    given = json.loads(deployments_addresses or "{}")
    out: dict[str, Any] = {}
    named: dict[str, list[Target]] = {}
    for deployment, addresses in given.items():
        is_dict = isinstance(addresses, dict)
        grpc_addresses = addresses.get("grpc", []) if is_dict else addresses
        expanded: list[str] = []
        for address in grpc_addresses:
            target = parse_target(address)
            if target is None or not target.is_name:
                expanded.append(address)
                continue
            named.setdefault(deployment, []).append(target)
            try:
                found, reason = lookup(target, server), "no address"
            except OSError as exc:
                found, reason = [], str(exc)
            if not found:
                logger.warning("%s: %s does not resolve yet (%s); the gateway looks again", deployment, target.host, reason)
            expanded += found or [address]
        unique = list(dict.fromkeys(expanded))
        out[deployment] = {**addresses, "grpc": unique} if is_dict else unique
    return json.dumps(out), named


class ReplicaWatcher:
    """Keeps a Jina connection pool's connections equal to what the names resolve to."""

    def __init__(self, pool: Any, named: dict[str, list[Target]], current: Mapping[str, Iterable[str]], server: Optional[tuple[str, int]] = None):
        self.pool = pool  # jina.serve.networking.GrpcConnectionPool
        self.named = named
        self.current = {d: set(current.get(d, ())) for d in named}
        self.server = server
        self.interval = resolve_interval()
        self._wake = asyncio.Event()
        self._last = 0.0
        self._task: Optional[asyncio.Task] = None

    def replicas(self) -> dict[str, int]:
        return {d: len(a) for d, a in self.current.items()}

    def start(self) -> None:
        if self.named:
            self._watch_failures()
            self._task = asyncio.get_running_loop().create_task(self._run())
            logger.info("balancing per request over the replicas of %s; looking again every %.0f s", ", ".join(sorted(self.named)), self.interval)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    def wake(self) -> None:
        """A replica failed as unreachable: look again now (rate-limited)."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.interval)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            await asyncio.sleep(max(0.0, self._last + MIN_RESOLVE_GAP_S - time.monotonic()))
            self._last = time.monotonic()
            try:
                await self.refresh()
            except Exception:  # the watcher must outlive any one bad lookup
                logger.exception("looking up the replicas failed; trying again in %.0f s", self.interval)

    async def refresh(self) -> None:
        loop = asyncio.get_running_loop()
        for deployment, targets in self.named.items():
            found: set[str] = set()
            try:
                for target in targets:
                    found.update(await loop.run_in_executor(None, lookup, target, self.server))
            except OSError as exc:
                logger.warning("%s: lookup failed (%s); keeping its %d connections", deployment, exc, len(self.current[deployment]))
                continue
            if not found:
                continue  # no ready replica listed right now: keep the ones there are to retry on
            await self._apply(deployment, found)

    async def _apply(self, deployment: str, found: set[str]) -> None:
        current = self.current[deployment]
        added, gone = sorted(found - current), sorted(current - found)
        for address in added:  # add before removing: never leave the deployment without one
            self.pool.add_connection(deployment=deployment, address=address, head=True)
        for address in gone:
            await self.pool.remove_connection(deployment=deployment, address=address, head=True)
        if added or gone:
            logger.info("%s: %d replicas (added %s, removed %s)", deployment, len(found), added or "none", gone or "none")
        self.current[deployment] = set(found)

    def _watch_failures(self) -> None:
        """Wake on an unreachable replica: Jina's pool reports every failed call here."""
        import grpc

        handle: Optional[Callable[..., Any]] = getattr(self.pool, "_handle_aiorpcerror", None)
        if handle is None:
            logger.warning("Jina's connection pool has no _handle_aiorpcerror: replicas are looked up on the timer only")
            return

        async def handle_and_wake(error: Any, *args: Any, **kwargs: Any) -> Any:
            if error.code() == grpc.StatusCode.UNAVAILABLE:
                self.wake()
            return await handle(error, *args, **kwargs)

        self.pool._handle_aiorpcerror = handle_and_wake


def annotate_info(response: Any, counts: Callable[[], dict[str, int]]) -> None:
    """Add ``replicas`` (how many the gateway balances over) to an encoder's ``/info`` answer:
    one replica cannot know, and a client sizes its requests in flight by it. ``counts`` is
    only asked for an ``/info`` answer: every response of every request passes here."""
    from executors.contracts import INFO

    if response.header.exec_endpoint != INFO:
        return
    replicas = counts()
    params = response.parameters
    results = params.get("__results__")
    if not isinstance(results, dict):
        return
    for name, answer in results.items():
        deployment = str(name).split("/")[0]
        if deployment in replicas and isinstance(answer, dict) and "model" in answer:
            answer["replicas"] = replicas[deployment]
    response.parameters = params
