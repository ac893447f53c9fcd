"""Benchmarks. ``python -m bench`` (``make bench``) runs the overall one; the other modules are
single-purpose scripts run by path (``python bench/refund_latency.py``)."""
