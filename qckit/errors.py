"""One root for every error qckit raises on purpose.

Messages say what was wrong, where, and what to do. The CLI maps `QckitInputError` (and its subclasses) to
exit code 2; a failed quality check is never an exception but a finding (exit code 1).
"""

from __future__ import annotations


class QckitError(Exception):
    """Base class of all qckit errors."""


class QckitInputError(QckitError):
    """The user's input (a path, a file, an option, a definition) cannot be used."""


class DicomReadError(QckitInputError):
    """A file could not be read as a DICOM image header."""


class NoDataError(QckitInputError):
    """An input produced nothing usable (for example a folder without any DICOM image).

    `partial` holds whatever was gathered (e.g. the list of bad files) so that callers can still report it.
    """

    def __init__(self, message: str, partial: object | None = None) -> None:
        super().__init__(message)
        self.partial = partial
