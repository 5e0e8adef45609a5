"""Benchmark of the HTTP API on a realistically filled database (run on demand, not in tests)."""
