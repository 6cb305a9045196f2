"""`app.py compare`: index the same images with several encoders, run the same queries, report.

- options.py: the options, checked before anything starts; which checkpoint each encoder uses;
- queries.py: the images and the queries (a stable content-hash sample, at most --max-queries);
- evaluation.py: one encoder's ranking metrics (through the flow) and score stratification;
- stratify.py: the blockwise queries × collection scoring from the stored vectors;
- significance.py: bootstrap intervals and paired tests between encoders;
- cache.py: resume; run.py: the run; synthetic.py: the evaluation benchmark.

The report itself is imgsearch/report/.
"""

from imgsearch.compare.options import (
    CompareError,
    CompareOptions,
    parse_encoders,
    split_entry,
)
from imgsearch.compare.run import run_compare

__all__ = ["CompareError", "CompareOptions", "parse_encoders", "run_compare", "split_entry"]
