"""`app.py compare`: index the same images with several encoders, run the same queries, report.

- options.py: the options, checked before anything starts; which checkpoint each encoder uses;
- queries.py: the images and the queries (a stable content-hash sample, at most --max-queries);
- evaluation.py: one encoder's ranking metrics (through the flow) and score stratification;
- stratify.py: the blockwise queries × collection scoring from the stored vectors;
- significance.py: bootstrap intervals and paired tests between encoders;
- cache.py: resume; run.py: the run; synthetic.py: the evaluation benchmark.

The report itself is imgsearch/report/.
"""

from typing import Any

from imgsearch.compare.options import CompareError, CompareOptions, parse_encoders, split_entry

__all__ = ["CompareError", "CompareOptions", "parse_encoders", "run_compare", "split_entry"]


def __getattr__(name: str) -> Any:
    """``run_compare`` on first use: the run pulls in the flow, the store and the report's
    plotting, which the command line's parser (it reads CompareOptions' defaults) never needs."""
    if name == "run_compare":
        from imgsearch.compare.run import run_compare

        return run_compare
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
