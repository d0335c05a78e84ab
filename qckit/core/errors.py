"""One root for every error qckit raises on purpose, all in this module.

Messages say what was wrong, where, and what to do. The CLI maps `QckitInputError` (and its subclasses) to
exit code 2; a failed quality check is never an exception but a finding (exit code 1). Other modules re-export
the classes they raise (e.g. `qckit.phantoms.localize.PhantomNotFoundError`) for convenience; they are defined
here only.
"""

from __future__ import annotations

from enum import StrEnum


class QckitError(Exception):
    """Base class of all qckit errors."""


class QckitInputError(QckitError):
    """The user's input (a path, a file, an option, a definition) cannot be used."""


# --- inputs: DICOM and images ---------------------------------------------------------------------------------
class ReadCause(StrEnum):
    """Why an item of a folder could not be used: a typed cause, so that callers sort read errors without
    matching message text. `quiet` causes (not DICOM, not an image) are files a phantom folder may hold beside
    its images (notes, ground truth, structure sets); the others are damaged or unreadable images."""

    NOT_DICOM = "not dicom"
    NOT_IMAGE = "not an image"
    NOT_REGULAR = "not a regular file"
    FOLDER = "folder"
    UNREADABLE = "unreadable"
    TRUNCATED = "truncated"
    CORRUPT = "corrupt"
    PIXELS = "pixel data"
    GEOMETRY = "geometry"

    @property
    def quiet(self) -> bool:
        """Files that are simply not images (listed, never a problem of a measurement)."""
        return self in (ReadCause.NOT_DICOM, ReadCause.NOT_IMAGE)


class DicomReadError(QckitInputError):
    """A file could not be read as a DICOM image header; `cause` says why, as a `ReadCause`."""

    def __init__(self, message: str, cause: ReadCause = ReadCause.CORRUPT) -> None:
        super().__init__(message)
        self.cause = cause

    def __reduce__(self) -> tuple[object, ...]:  # pickled across the scan's worker processes
        return (type(self), (str(self), self.cause))


class NoDataError(QckitInputError):
    """An input produced nothing usable (for example a folder without any DICOM image).

    `partial` holds whatever was gathered (e.g. the list of bad files) so that callers can still report it.
    """

    def __init__(self, message: str, partial: object | None = None) -> None:
        super().__init__(message)
        self.partial = partial


class VolumeError(QckitInputError):
    """Pixel data cannot be assembled into a volume (the message names the file or series); `path`: the file
    that shows the problem, when one does."""

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


# --- definitions ----------------------------------------------------------------------------------------------
class DefinitionError(QckitInputError):
    """A bundled or user definition file (protocol, phantom) cannot be found, read or validated."""


class ProtocolError(DefinitionError):
    """A protocol file cannot be read or is invalid."""


class PhantomError(DefinitionError):
    """A phantom definition cannot be read or is invalid."""


class AnalysisError(QckitInputError):
    """An analysis is unknown, or a phantom definition asks for it in a way it cannot run."""


# --- phantom measurement --------------------------------------------------------------------------------------
class PhantomNotFoundError(QckitInputError):
    """The phantom cannot be found in an image, or not with the size its definition gives."""


class MissingROIError(QckitInputError):
    """A region of interest of the definition cannot be placed on this series (slice absent, outside)."""


class PhantomMeasurementError(QckitInputError):
    """No phantom scan could be measured; `problems` lists each scan's reason."""

    def __init__(self, message: str, problems: list[dict[str, str]]) -> None:
        super().__init__(message)
        self.problems = problems

    def __reduce__(self) -> tuple[type, tuple[str, list[dict[str, str]]]]:
        # pickled whole (an error raised in a forked worker reaches its caller as itself)
        return (type(self), (str(self), self.problems))


class TooFewRepeatsError(QckitInputError):
    """Not enough repeat scans (or conditions) to decide anything."""


# --- QC sessions and their history ----------------------------------------------------------------------------
class SessionSelectionError(QckitInputError):
    """A folder holds several QC sessions (or none that matches the selector): the message lists them."""


class AcquisitionMismatchError(QckitInputError):
    """A series offered as an identical repeat differs from the measured one (the attributes are named)."""


class DuplicateSessionError(QckitInputError):
    """Series of this session were already recorded in the QC history."""


class HistoryError(QckitError):
    """The QC history store cannot be opened, upgraded or written (the message names the URL and the cause)."""


# --- harmonization and normalization --------------------------------------------------------------------------
class HarmonizationError(QckitInputError, ValueError):
    """The data cannot be harmonized as given."""


class ModelFileError(QckitInputError):
    """A model folder is missing, corrupt or of an unknown format."""


class NormalizationError(QckitInputError):
    """An image cannot be normalized as asked (no tissue mode found, empty stripe or mask, ...)."""
