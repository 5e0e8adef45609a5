"""Benchmarks of the upload-file source (run on demand: `python -m bench.files`)."""
