"""A seeded multi-site brain MRI dataset with planted protocol deviations (ground truth for `protocol infer`)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from qckit.synth.dicom import SCANNERS, SeriesSpec, Subject, write_series

BRAIN_SERIES: dict[str, SeriesSpec] = {
    "t1": SeriesSpec("T1 MPRAGE sag", 2, orientation="sagittal", n_slices=6, rows=24, columns=24,
                     pixel_spacing_mm=1.0, slice_thickness_mm=1.0, slice_gap_mm=0.0, repetition_time_ms=2300.0,
                     echo_times_ms=(2.98,), inversion_time_ms=900.0, flip_angle_deg=9.0, acquisition_type="3D",
                     scanning_sequence="GR\\IR", sequence_variant="SK\\SP\\MP", pixel_bandwidth_hz=240.0),
    "t2": SeriesSpec("T2 TSE ax", 3, n_slices=5, rows=24, columns=24, pixel_spacing_mm=0.9, slice_thickness_mm=3.0,
                     slice_gap_mm=0.3, repetition_time_ms=3200.0, echo_times_ms=(100.0,), flip_angle_deg=150.0,
                     echo_train_length=16, pixel_bandwidth_hz=220.0),
    "flair": SeriesSpec("FLAIR 3D sag", 4, orientation="sagittal", n_slices=6, rows=24, columns=24,
                        pixel_spacing_mm=1.0, slice_thickness_mm=1.0, slice_gap_mm=0.0, repetition_time_ms=5000.0,
                        echo_times_ms=(387.0,), inversion_time_ms=1800.0, flip_angle_deg=120.0,
                        acquisition_type="3D", sequence_variant="SK\\SP\\MP", pixel_bandwidth_hz=750.0),
}  # fmt: skip

# the same field strength everywhere: a deviation is only what is planted
_SITE_SCANNERS = ["siemens-skyra-3t", "ge-mr750-3t", "siemens-skyra-3t", "ge-mr750-3t", "siemens-skyra-3t"]


@dataclass
class MultisiteDataset:
    root: Path
    # (site, series key) -> series_uid
    series_uids: dict[tuple[int, str], str] = field(default_factory=dict)
    # planted deviations as (series_uid, index keyword)
    planted: set[tuple[str, str]] = field(default_factory=set)
    missing: set[tuple[int, str]] = field(default_factory=set)


# index keywords that change with each SeriesSpec field (the header's SpacingBetweenSlices is written as
# slice thickness + gap, so a thicker slice also spaces the slices further apart)
SPEC_TO_KEYWORDS = {
    "repetition_time_ms": ("RepetitionTime",),
    "echo_times_ms": ("EchoTime",),
    "inversion_time_ms": ("InversionTime",),
    "flip_angle_deg": ("FlipAngle",),
    "slice_thickness_mm": ("SliceThickness", "SpacingBetweenSlices"),
    "pixel_bandwidth_hz": ("PixelBandwidth",),
}


def make_multisite_dataset(
    root: Path,
    deviations: dict[tuple[int, str], dict[str, object]],
    *,
    n_sites: int = 5,
    omit: set[tuple[int, str]] | None = None,
    seed: int = 11,
) -> MultisiteDataset:
    """One session (study) per site with the series of `BRAIN_SERIES`; `deviations[(site, key)]` changes
    SeriesSpec fields of that series, `omit` leaves series out (a missing series)."""
    out = MultisiteDataset(root=Path(root), missing=set(omit or ()))
    for site in range(n_sites):
        scanner = replace(
            SCANNERS[_SITE_SCANNERS[site % len(_SITE_SCANNERS)]], serial=f"SITE{site}", station=f"SITE{site}"
        )
        subject = Subject(name=f"Site{site}^Volunteer", patient_id=f"S{site}-001", birth_date="19800101")
        for key, spec in BRAIN_SERIES.items():
            if (site, key) in out.missing:
                continue
            change = deviations.get((site, key), {})
            written = write_series(
                out.root / f"site{site}" / key,
                scanner,
                replace(spec, **change),  # type: ignore[arg-type]
                seed=seed + site,
                subject=subject,
                study_key=f"site{site}",
            )
            out.series_uids[(site, key)] = written.series_uid
            for field_name in change:
                out.planted.update((written.series_uid, kw) for kw in SPEC_TO_KEYWORDS[field_name])
    return out
