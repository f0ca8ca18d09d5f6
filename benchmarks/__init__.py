"""The benchmark harness: `python -m benchmarks` (usage in benchmarks/__main__.py)."""
