"""`app.py bench`: how fast indexing and search are, and where the time goes, in one run.

- ``models``: full-size random-weight checkpoints (the transformers default configs are
  the real architectures) for speed measurements on machines without a model hub.
- ``images``: the images every measurement of a run shares (a folder, or synthetic ones).
- ``bare``: the encoder alone on pre-decoded tensors, the ceiling (run in a clean process).
- ``pipeline``: the same images end to end through the flow, start-up, stage breakdown,
  search latency and concurrent clients.
- ``store``: the embedded Qdrant engine at 10k/100k vectors.
- ``growth``: index time, search latency and memory at growing collection sizes.
- ``run``: puts them together, prints the tables, writes bench.json and a chart.
"""
