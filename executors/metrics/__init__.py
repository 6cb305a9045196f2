"""Prometheus metrics of every flow process: what is counted (registry.py), where (worker.py,
gateway.py) and how it is served (server.py). docs/metrics.md documents them."""
