"""One HTTP request's status and body, an error status included (the metrics endpoints' tests)."""

import urllib.error
import urllib.request


def http_status(url: str, headers: dict, method: str = "GET") -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers, method=method), timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
