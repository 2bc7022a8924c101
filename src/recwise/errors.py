"""The one exception family of recwise.

Every error a user can cause derives from :class:`RecwiseError`; the CLI prints
its message on one line and exits with status 2 (``--debug`` shows the traceback)::

    RecwiseError
    ├── ConfigError        an option is unknown, misspelled or out of range
    ├── DataError          a raw or prepared data file is missing, empty or malformed
    ├── CheckpointError    a checkpoint is missing, corrupt or from another run
    └── DependencyError    an optional dependency is not installed

Messages follow one formula: what went wrong, where (file, column, option),
what was expected, what was found, and what to do.
"""

from __future__ import annotations

__all__ = ["CheckpointError", "ConfigError", "DataError", "DependencyError", "RecwiseError"]


class RecwiseError(Exception):
    """Base class of every error recwise raises on bad input."""


class ConfigError(RecwiseError, ValueError):
    """An option is unknown, misspelled, of the wrong type or out of range."""


class DataError(RecwiseError, ValueError):
    """A data file is missing, empty or malformed."""


class CheckpointError(RecwiseError):
    """A checkpoint cannot be read or does not match the run."""


class DependencyError(RecwiseError, ImportError):
    """An optional dependency is missing; the message gives the install command."""
