"""Executor constructor kwargs filled from the flow YAML's ``${{ ENV.X }}`` placeholders.

Jina hands an executor an empty variable as ``None`` or ``""``, and an unset one as the
literal text ``"$X"``; a number may arrive as text. Every executor reads such kwargs
through :func:`flow_kwarg`, so unset or empty always means the constructor's default.
"""

import re
from typing import Any, Callable, TypeVar, overload

T = TypeVar("T")
D = TypeVar("D")

_PLACEHOLDER = re.compile(r"\$(\w+|\{\{\s*ENV\.\w+\s*\}\})")  # what Jina leaves of an unset variable


@overload
def flow_kwarg(name: str, value: Any, default: T, cast: Callable[[Any], T]) -> T: ...
@overload
def flow_kwarg(name: str, value: Any, default: D) -> D | str: ...  # cast: str


def flow_kwarg(name: str, value: Any, default: Any, cast: Callable[[Any], Any] = str) -> Any:
    """``value`` as the executor uses it: ``default`` when unset or empty, else ``cast(value)``.

    A value ``cast`` rejects raises ``ValueError`` naming the kwarg, so the executor fails
    to start with a clear reason instead of failing every request later.
    """
    if value is None or (isinstance(value, str) and (not value.strip() or _PLACEHOLDER.fullmatch(value.strip()))):
        return default
    try:
        return cast(value)
    except (TypeError, ValueError) as exc:
        kind = getattr(cast, "__name__", str(cast))
        raise ValueError(f"executor argument '{name}': {value!r} is not a valid {kind}") from exc


def boolean(value: Any) -> bool:
    """A YAML or environment switch: true/false, 1/0, yes/no, on/off (any case)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"not a switch: {value!r}")
