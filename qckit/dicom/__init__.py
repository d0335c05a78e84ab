"""Header-only DICOM reading, series grouping and the series index (`qckit scan`)."""

from qckit.dicom.header import FrameGroup, read_header
from qckit.dicom.index import (
    ScanError,
    ScanResult,
    load_index,
    load_or_scan,
    scan,
    write_errors,
    write_json,
    write_table,
)
from qckit.dicom.series import COLUMNS

__all__ = [
    "COLUMNS",
    "FrameGroup",
    "ScanError",
    "ScanResult",
    "load_index",
    "load_or_scan",
    "read_header",
    "scan",
    "write_errors",
    "write_json",
    "write_table",
]
