"""Load generators and the benchmark suite behind docs/benchmarks/BENCHMARKS.md."""
