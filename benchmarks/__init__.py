"""gluekit benchmarks: each compares gluekit with a baseline measured in the same run (ratios).

Run all: ``python -m benchmarks`` (writes benchmarks/results/*.json and BENCHMARKS.md);
one: ``python -m benchmarks data_prep``; ``--quick`` for small sizes (what tests/test_benchmarks.py uses
to check that every benchmark still runs and its outputs agree, never its timings).
"""
