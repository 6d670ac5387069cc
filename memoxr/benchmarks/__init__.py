"""Benchmark scripts (``python -m memoxr.benchmarks.NAME``): the measurements the README quotes, side by side in one run."""
