"""Benchmarks: `make bench` (throughput, memory, latency) and `make bench-detect` (detection quality)."""
