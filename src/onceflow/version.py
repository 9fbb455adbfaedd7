"""The onceflow version, recorded in every sidecar."""

__version__ = "0.1.0"
