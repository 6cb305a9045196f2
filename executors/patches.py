"""One policy for the patches of third-party internals (gateway/jina_fixes.py, docarray_fixes.py).

A patch applies on the library versions it was written for, and only where the internals it
replaces are still the ones it expects. Anywhere else the library keeps its own behaviour
(slower, never wrong), with one warning saying which and why: a start-up never fails over an
optimisation. Whether the pinned versions still have the expected internals is checked by
the tests (tests/test_jina_fixes.py, tests/test_docarray_fixes.py), so a lock update that
moves them fails CI, not a user's run.
"""

import importlib.metadata
import logging
from typing import Callable

logger = logging.getLogger(__name__)
_warned: set[str] = set()


def installed_version(distribution: str, fallback: str = "?") -> str:
    """The installed distribution's version (a package's ``__version__`` can lag its wheel's)."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return fallback


def should_apply(library: str, written_for: tuple[str, ...], changes: Callable[[], list[str]], version: str | None = None) -> bool:
    """Whether a patch of ``library`` applies: its version starts with one of ``written_for``
    and ``changes()`` finds nothing of the internals it replaces changed. Else one warning per
    library and process, and False."""
    version = version or installed_version(library)
    if not version.startswith(written_for):
        reason = f"written for {library} {', '.join(v.rstrip('.') + '.x' for v in written_for)}"
    else:
        found = changes()
        if not found:
            return True
        reason = "its internals changed: " + "; ".join(found)
    if library not in _warned:
        _warned.add(library)
        logger.warning("%s %s: imgsearch's patches are not applied (%s); running with %s's own behaviour", library, version, reason, library)
    return False
