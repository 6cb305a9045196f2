"""A DNS server on loopback that answers A queries from a table the test edits, as a headless
Service's name lists the ready pods of a Deployment (the endpoint controller edits it there)."""

import logging
import socket
import threading

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

logger = logging.getLogger(__name__)


class DnsServer:
    def __init__(self, host: str = "127.0.0.1"):
        self.records: dict[str, list[str]] = {}
        self.queries = 0
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind((host, 0))
        self._sock.settimeout(0.2)
        self.address = f"{host}:{self._sock.getsockname()[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="dns-server", daemon=True)

    def set(self, name: str, addresses: list[str]) -> None:
        with self._lock:
            self.records[name.rstrip(".")] = list(addresses)

    def __enter__(self) -> "DnsServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self._sock.recvfrom(4096)
            except (TimeoutError, OSError):
                continue
            try:
                query = dns.message.from_wire(data)
            except Exception:  # not a DNS message: ignore, as a server would
                continue
            self._sock.sendto(self._answer(query).to_wire(), peer)

    def _answer(self, query: dns.message.Message) -> dns.message.Message:
        response = dns.message.make_response(query)
        self.queries += 1
        for question in query.question:
            name = question.name.to_text().rstrip(".")
            with self._lock:
                addresses = list(self.records.get(name, ()))
            if name not in self.records:
                response.set_rcode(dns.rcode.NXDOMAIN)
            elif question.rdtype == dns.rdatatype.A and addresses:
                response.answer.append(dns.rrset.from_text(question.name, 1, "IN", "A", *addresses))
        return response
