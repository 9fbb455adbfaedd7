"""The onceflow exception hierarchy: the CLI turns any of these into one clear line."""

from __future__ import annotations


class OnceflowError(Exception):
    """Base of every error onceflow raises on purpose."""

    exit_code = 1


class ConfigError(OnceflowError):
    """The config file or a command-line option is invalid."""

    exit_code = 2


class StateError(OnceflowError):
    """The state store is unreachable, corrupt, or refused a transition."""


class SourceError(OnceflowError):
    """A source database failed; `transient` says whether retrying may help."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class ExtractError(OnceflowError):
    """Writing or verifying an extracted file failed."""


class LoadError(OnceflowError):
    """Loading a file into a Delta table failed; the table is left untouched."""


class LockError(OnceflowError):
    """A pipeline lock is held by someone else, or was lost."""
