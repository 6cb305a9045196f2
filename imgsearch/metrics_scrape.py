"""Reading a flow process's Prometheus metrics (docs/metrics.md): where they are, and what they say.

``scrape`` fetches one ``/metrics`` with the bearer token and parses it with prometheus_client's
own text parser; ``metrics_addresses`` lists the endpoint of every process of a local flow
(each executor replica has its own, so a test can read how requests spread over replicas).
"""

import logging
import urllib.error
import urllib.request
from typing import Any, Optional

from prometheus_client.parser import text_string_to_metric_families

logger = logging.getLogger(__name__)

Sample = tuple[str, tuple[tuple[str, str], ...]]  # (sample name, sorted (label, value) pairs)
MAX_BYTES = 8 << 20  # a metrics page is a few kB; a bigger answer is not one


class ScrapeError(RuntimeError):
    """A metrics endpoint that did not answer with metrics (the HTTP status when it answered)."""

    def __init__(self, message: str, status: Optional[int] = None) -> None:
        super().__init__(message)
        self.status = status


def scrape(url: str, token: Optional[str], timeout: float = 5.0) -> dict[Sample, float]:
    """Every sample at ``url`` (``http://host:port/metrics``): {(name, labels): value}.

    Counters appear as ``<name>_total``, histograms as ``_bucket``/``_count``/``_sum``."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token is not None else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (http URLs we were given)
            text = response.read(MAX_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise ScrapeError(f"{url}: HTTP {exc.code}", exc.code) from exc
    except (urllib.error.URLError, OSError) as exc:
        raise ScrapeError(f"{url}: {exc}") from exc
    if len(text) > MAX_BYTES:
        raise ScrapeError(f"{url}: more than {MAX_BYTES} bytes")
    return parse(text.decode())


def parse(text: str) -> dict[Sample, float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict[Sample, float], name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels`` (0.0 when none)."""
    want = set(labels.items())
    return sum(v for (n, pairs), v in samples.items() if n == name and want <= set(pairs))


def metrics_addresses(flow: Any) -> dict[str, list[str]]:
    """{deployment name: [metrics URL of each replica]} of a running local Jina Flow, plus
    ``gateway``: the ports Jina assigned (``--port-monitoring``), on the loopback address the
    local flows serve metrics on."""
    found: dict[str, list[str]] = {}
    for name, deployment in flow._deployment_nodes.items():
        if getattr(deployment.args, "external", False):
            continue  # another flow's process: listed by that flow
        if name == "gateway":
            found[name] = [_url(deployment.args.port_monitoring)]
            continue
        replicas = deployment.pod_args["pods"][0]  # shard 0: the flows do not shard
        found[name] = [_url(args.port_monitoring) for args in replicas]
    return found


def _url(port: Any) -> str:
    port = port[0] if isinstance(port, list) else port
    return f"http://127.0.0.1:{int(port)}/metrics"
