"""onceflow: batch data pipelines that are safe to rerun and recover from any crash."""

__version__ = "0.1.0"
