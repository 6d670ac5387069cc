"""Exceptions memoxr raises for input it cannot use.

The CLI turns each into a one-line message and exit status 2.
"""

from __future__ import annotations


class MemoxrInputError(ValueError):
    """Bad input: a missing key, a wrong shape, dtype or value, an unknown name.

    Messages name the key or argument, what was expected and what was received.
    """


class OutputExistsError(FileExistsError):
    """The output exists and ``overwrite`` was not given."""

    def __init__(self, path: str) -> None:
        super().__init__(
            f"output {path!r} already exists; pass overwrite=True to replace it"
        )
        self.path = path


class IncompleteStoreError(MemoxrInputError):
    """A store that was never finished (an interrupted write) or is not memoxr's."""


class MissingExtraError(ImportError):
    """A feature needs an optional dependency that is not installed; the message names the extra."""
