"""Load generators and the benchmark suite behind BENCHMARKS.md."""
