"""flows/index.yml read as data: the one description of the chain that the local flows,
the Kubernetes export and the tests all use."""

import re
from pathlib import Path
from typing import Any, Mapping

import yaml

REPO = Path(__file__).resolve().parent.parent
FLOW_YAML = REPO / "flows" / "index.yml"


def read_flow(encoder: str) -> dict:
    """flows/index.yml for one encoder: executors in order, ``uses_with`` placeholders kept."""
    flow = yaml.safe_load(FLOW_YAML.read_text())
    executors = []
    for ex in flow["executors"]:
        uses = ex["uses"].replace("${{ ENV.ENCODER }}", encoder)
        executors.append(
            {"name": ex["name"], "uses": uses, "uses_with": ex.get("uses_with") or {}, "uses_dynamic_batching": ex.get("uses_dynamic_batching")}
        )
    return {"with": flow.get("with") or {}, "gateway": flow.get("gateway") or {}, "executors": executors}


def expand_env(value: Any, env: Mapping[str, str]) -> Any:
    """The YAML's ``${{ ENV.X }}`` placeholders, filled from ``env`` as Jina fills them from the
    environment when it loads the file."""
    if not isinstance(value, str):
        return value
    return re.sub(r"\$\{\{\s*ENV\.(\w+)\s*\}\}", lambda m: env.get(m.group(1), ""), value) or None
