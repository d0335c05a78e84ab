"""Enhanced (multi-frame) MR/CT headers: per-frame values from the functional groups (DICOM PS3.3 C.7.6.16).

For each frame the attributes are looked up, in order of precedence, in the Per-Frame Functional Groups item of
that frame, the Shared Functional Groups item, and the top-level dataset. Inside a functional group the first
item of each macro sequence is flattened one level (e.g. MR Timing and Related Parameters -> RepetitionTime).
Frames are split into acquisitions by effective echo time, echo number and frame type, like classic files.

Enhanced attributes that carry a classic attribute's meaning under another keyword are mapped to it:
EffectiveEchoTime -> EchoTime, FrameType -> ImageType, InversionTimes -> InversionTime,
XRayTubeCurrentInmA -> XRayTubeCurrent, ExposureInmAs -> Exposure. Enhanced MR has no ScanningSequence; it is
derived from EchoPulseSequence (SPIN -> SE, GRADIENT -> GR, BOTH -> SE\\GR), with EP added for echo-planar
and IR for inversion-recovery frames.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

from qckit.dicom.tags import SERIES_ATTRIBUTES
from qckit.dicom.values import normalise, orientation_label, position_along, slice_normal

_ALIASES = {
    "EffectiveEchoTime": "EchoTime",
    "FrameType": "ImageType",
    "InversionTimes": "InversionTime",
    "XRayTubeCurrentInmA": "XRayTubeCurrent",
    "ExposureInmAs": "Exposure",
}
_EXTRA = (
    "EchoPulseSequence",
    "EchoPlanarPulseSequence",
    "InversionRecovery",
    "ImagePositionPatient",
    "ImageOrientationPatient",
)
_WANTED = set(SERIES_ATTRIBUTES) | set(_ALIASES) | set(_EXTRA)


@dataclass
class EnhancedGroup:
    params: dict[str, Any]
    n_frames: int = 0
    positions: list[float] = field(default_factory=list)
    orientations: set[str] = field(default_factory=set)


def _flatten(item: Dataset | None, out: dict[str, Any], depth: int = 0) -> None:
    """Copy wanted non-sequence values of each functional-group macro (first item) into `out`."""
    if item is None:
        return
    for elem in item:
        if elem.VR == "SQ":
            if depth < 2 and len(elem.value) > 0:
                _flatten(elem.value[0], out, depth + 1)
            continue
        keyword = elem.keyword
        if keyword in _WANTED and elem.value not in (None, ""):
            out[_ALIASES.get(keyword, keyword)] = elem.value


def _scanning_sequence(values: dict[str, Any]) -> str | None:
    pulse = str(values.get("EchoPulseSequence") or "").upper()
    parts = {"SPIN": ["SE"], "GRADIENT": ["GR"], "BOTH": ["SE", "GR"]}.get(pulse, [])
    if str(values.get("EchoPlanarPulseSequence") or "").upper() == "YES":
        parts.insert(0, "EP")
    if str(values.get("InversionRecovery") or "").upper() == "YES":
        parts.append("IR")
    return "\\".join(parts) or None


def _frames(ds: Dataset) -> Iterable[Dataset | None]:
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    n = int(ds.get("NumberOfFrames") or (len(per_frame) if per_frame else 1) or 1)
    for i in range(n):
        yield per_frame[i] if per_frame is not None and i < len(per_frame) else None


def frame_groups(ds: Dataset, top_values: dict[str, Any]) -> list[EnhancedGroup]:
    """Per-acquisition groups of frames of one enhanced image (see module docstring)."""
    base: dict[str, Any] = {k: v for k, v in top_values.items() if k in SERIES_ATTRIBUTES}
    for keyword in _EXTRA:
        if keyword in ds:
            base[keyword] = ds[keyword].value
    shared = ds.get("SharedFunctionalGroupsSequence")
    _flatten(shared[0] if shared else None, base)
    groups: dict[tuple[Any, ...], EnhancedGroup] = {}
    for frame_item in _frames(ds):
        values = dict(base)
        _flatten(frame_item, values)
        params = {k: normalise(k, kind, values.get(k)) for k, kind in SERIES_ATTRIBUTES.items()}
        if params.get("ScanningSequence") is None and params.get("Modality") == "MR":
            params["ScanningSequence"] = _scanning_sequence(values)
        te = params.get("EchoTime")
        key = (None if te is None else round(te, 3), params.get("EchoNumbers"), params.get("ImageType"))
        iop = normalise("ImageOrientationPatient", "floats", values.get("ImageOrientationPatient"))
        ipp = normalise("ImagePositionPatient", "floats", values.get("ImagePositionPatient"))
        normal = slice_normal(iop)
        group = groups.get(key)
        if group is None:
            params["_normal"] = normal
            group = groups[key] = EnhancedGroup(params=params)
        group.n_frames += 1
        pos = position_along(group.params.get("_normal") or normal, ipp)
        if pos is not None:
            group.positions.append(pos)
        label = orientation_label(iop)
        if label is not None:
            group.orientations.add(label)
    return list(groups.values())
