"""Extraction: source -> Arrow batches -> Parquet + metadata sidecar."""
