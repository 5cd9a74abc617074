"""Benchmarks; each prints readable progress and ends with one line of JSON."""
