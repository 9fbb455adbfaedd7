"""Load: Parquet files -> Delta tables (append, overwrite, merge, scd2), one commit per file."""
