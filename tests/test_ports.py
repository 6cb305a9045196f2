"""Local flows' ports come from outside the kernel's ephemeral range (imgsearch/ports.py)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from imgsearch.ports import FLOOR, TOP, ephemeral_range, listening_range

REPO = Path(__file__).resolve().parents[1]


def test_listening_range_is_the_larger_stretch_outside_the_ephemeral_range() -> None:
    assert listening_range((32768, 60999)) == (FLOOR, 32767)  # Linux's default
    assert listening_range((49152, 65535)) == (FLOOR, 49151)  # macOS's and Windows' default
    assert listening_range((20000, 30000)) == (30001, TOP)
    assert listening_range((1024, 65535)) is None  # nothing left: Jina's default stays
    assert listening_range(None) is None


def test_ephemeral_range_reads_the_kernels_file(tmp_path: Path) -> None:
    good = tmp_path / "range"
    good.write_text("32768\t60999\n")
    assert ephemeral_range(good) == (32768, 60999)
    bad = tmp_path / "bad"
    bad.write_text("not ports")
    assert ephemeral_range(bad) is None
    assert ephemeral_range(tmp_path / "missing") is None


_DRAW = """
import json
from imgsearch.ports import free_port, use_listening_range
use_listening_range()
from jina import Flow
flow = Flow(port=free_port()).add(name="a").add(name="b")
ports = [free_port() for _ in range(200)]
ports += [p for d in flow._deployment_nodes.values() for p in d.args.port]
print(json.dumps(ports))
"""


def _draw(env: dict[str, str]) -> list[int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JINA_RANDOM_PORT_")} | env
    env["PYTHONPATH"] = str(REPO)
    out = subprocess.run([sys.executable, "-c", _DRAW], env=env, capture_output=True, text=True, timeout=120, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.skipif(ephemeral_range() is None, reason="the kernel's ephemeral range is unknown here")
def test_flow_and_free_ports_avoid_the_ephemeral_range() -> None:
    low, high = ephemeral_range()
    ports = _draw({})
    assert len(ports) == 202 and len(set(ports)) == len(ports)  # no port drawn twice
    assert not [p for p in ports if low <= p <= high]


def test_a_range_the_user_set_is_kept() -> None:
    ports = _draw({"JINA_RANDOM_PORT_MIN": "40000", "JINA_RANDOM_PORT_MAX": "40999"})
    assert all(40000 <= p <= 40999 for p in ports) and len(set(ports)) == len(ports)
