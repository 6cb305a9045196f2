"""The command line: parse once (parser.py), resolve into a command's options (settings.py), run it.

`app.py` only calls main(). Commands receive their options value and the true stdout; they
never see argv. Exit codes: 0 success, 2 a UserError (the user's to fix), 1 anything else.
"""

import atexit
import contextlib
import json
import logging
import os
import sys
import threading
import traceback
import warnings
from typing import Any, Callable, Iterator, NoReturn, Optional, TextIO

from executors.errors import UserError
from imgsearch.cli.parser import RUNTIME_CHOICES, build_parser
from imgsearch.cli.settings import Invocation, resolve

logger = logging.getLogger("imgsearch")

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2

__all__ = ["EXIT_FAILURE", "EXIT_OK", "EXIT_USAGE", "RUNTIME_CHOICES", "build_parser", "exit_now", "main", "real_stdout"]


@contextlib.contextmanager
def real_stdout() -> Iterator[TextIO]:
    """Send everything else (Jina's banners, executor processes) to stderr; yield the true stdout.

    `--json` output must be the only thing on stdout, and child processes inherit fd 1.
    """
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    out = os.fdopen(os.dup(saved), "w", encoding="utf-8")
    try:
        yield out
    finally:
        out.flush()
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        out.close()


def exit_now(code: Optional[int]) -> NoReturn:
    """End the process once a command has returned: its flows are closed and its files
    written, so what is left is the interpreter tearing down torch's, transformers' and
    jina's modules, 1-1.5 s of freeing memory the exit frees anyway. What a normal exit
    does that matters runs first: other threads are joined, exit handlers (temporary
    folders, multiprocessing's children) run, logs and the standard streams are flushed."""
    current = threading.current_thread()
    for thread in threading.enumerate():
        if thread is not current and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()  # what the interpreter's own exit runs first
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`| head`) or stream: nothing more to say
            pass
    os._exit(code or 0)


def handlers() -> dict[str, Callable[[Any, TextIO], int]]:
    """Each command's function. Imported here, after main() has set the process's
    environment and before torch and jina load."""
    from imgsearch import commands
    from imgsearch.web.serve import cmd_serve  # the page is an entry point beside this command line

    return {
        "index": commands.cmd_index,
        "search": commands.cmd_search,
        "stats": commands.cmd_stats,
        "sample": commands.cmd_sample,
        "demo": commands.cmd_demo,
        "encoders": commands.cmd_encoders,
        "k8s": commands.cmd_k8s,
        "compare": commands.cmd_compare,
        "serve": cmd_serve,
        "up": commands.cmd_up,
        "bench": commands.cmd_bench,
        "tiny-models": commands.cmd_tiny_models,
        "export-fashion-mnist": commands.cmd_export_fashion_mnist,
    }


def main(argv: Optional[list[str]] = None) -> int:
    # jina's hub SDK imports pkg_resources; its deprecation notice is noise for users
    # (and for the executor processes, which inherit the environment).
    os.environ.setdefault("PYTHONWARNINGS", "ignore:pkg_resources is deprecated")
    # Before torch loads OpenMP (the executors fork from here and inherit it): idle OpenMP
    # threads sleep instead of spinning, leaving the CPU to decoding and gRPC in the other
    # stages (measured by `app.py bench`; docs/performance.md).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        os.environ.setdefault("JINA_LOG_LEVEL", "ERROR")
    run = Invocation(args.command, None, verbose=args.verbose, json=bool(getattr(args, "json", False)))
    with real_stdout() as out:
        try:
            run = resolve(args, argv)  # the options, checked: a mistake is one clear error before anything starts
            return handlers()[run.command](run.options, out)
        except UserError as exc:
            return _fail(run, out, exc, EXIT_USAGE)
        except Exception as exc:  # a bug or an outage (FlowError...): exit 1, traceback with -v
            if run.verbose:
                traceback.print_exc(file=sys.stderr)
            return _fail(run, out, exc, EXIT_FAILURE, hint=not run.verbose)
        except KeyboardInterrupt:
            print("interrupted: what was acknowledged as stored stays stored", file=sys.stderr)
            return 130


def _fail(run: Invocation, out: TextIO, exc: Exception, code: int, hint: bool = False) -> int:
    message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
    if run.json:
        json.dump({"error": message, "type": type(exc).__name__}, out)
        out.write("\n")
    print(f"error: {message}", file=sys.stderr)
    if hint:
        print(f"({type(exc).__name__}; run again with -v for the traceback)", file=sys.stderr)
    return code
