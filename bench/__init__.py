"""Benchmarks: each prints ratios or percentiles measured against a baseline in the same run."""
