"""Three virtual sites submit for qualification (the demo's stage and its tests).

Each site's submission holds one test session of the brain MRI study protocol (`brain-mri-multicentre`: 3-D T1,
T2 TSE, 3-D FLAIR) and three repeated scans of the qckit texture phantom on one day, all from one scanner (same
vendor, model, serial). What is planted:

- site A: complete and compliant;
- site B: its T2 acquired with 5 mm slices (the protocol allows at most 3.5 mm, level fail), and its scanner's
  phantom signal 30 % higher (intensity features off the other sites': harmonization needed);
- site C: no FLAIR series.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from qckit.phantoms.load import load_phantom
from qckit.synth.dicom import SCANNERS, SeriesSpec, Subject, write_series
from qckit.synth.phantom_scanner import SynthScanner, synthesize

BRAIN = {
    "t1": SeriesSpec("T1 MPRAGE sag", 2, orientation="sagittal", n_slices=4, rows=240, columns=240,
                     pixel_spacing_mm=1.0, slice_thickness_mm=1.0, slice_gap_mm=0.0, repetition_time_ms=2300.0,
                     echo_times_ms=(2.98,), inversion_time_ms=900.0, flip_angle_deg=9.0, acquisition_type="3D",
                     scanning_sequence="GR\\IR", sequence_variant="SK\\SP\\MP", pixel_bandwidth_hz=240.0),
    "t2": SeriesSpec("T2 TSE ax", 3, n_slices=4, rows=256, columns=256, pixel_spacing_mm=0.9, slice_thickness_mm=3.0,
                     slice_gap_mm=0.3, repetition_time_ms=3200.0, echo_times_ms=(100.0,), flip_angle_deg=150.0,
                     echo_train_length=16, pixel_bandwidth_hz=220.0),
    "flair": SeriesSpec("FLAIR 3D sag", 4, orientation="sagittal", n_slices=4, rows=240, columns=240,
                        pixel_spacing_mm=1.0, slice_thickness_mm=1.0, slice_gap_mm=0.0, repetition_time_ms=5000.0,
                        echo_times_ms=(387.0,), inversion_time_ms=1800.0, flip_angle_deg=120.0,
                        acquisition_type="3D", sequence_variant="SK\\SP\\MP", pixel_bandwidth_hz=750.0),
}  # fmt: skip


@dataclass(frozen=True)
class VirtualSite:
    """A site: its scanner (vendor template and serial), what it got wrong, and what it left out."""

    name: str
    template: str
    serial: str
    deviations: dict[str, dict[str, object]] = field(default_factory=dict)  # series key -> SeriesSpec changes
    omit: tuple[str, ...] = ()
    gain: float = 1.0  # the phantom signal of its scanner (1.3: a scanner harmonization has to correct)


SITES = (
    VirtualSite("site-a", "siemens-skyra-3t", "QA-0001"),
    VirtualSite("site-b", "ge-mr750-3t", "QB-0002", deviations={"t2": {"slice_thickness_mm": 5.0}}, gain=1.3),
    VirtualSite("site-c", "philips-ingenia-1.5t", "QC-0003", omit=("flair",)),
)
PLANTED = {"site-a": "qualified", "site-b": "not qualified", "site-c": "incomplete"}


def write_submissions(root: str | Path, *, seed: int = 0, repeats: int = 3) -> dict[str, Path]:
    """Write one submission folder per site under `root`; returns {site: folder}."""
    root = Path(root)
    texture = load_phantom("qckit-texture").phantom
    out = {}
    for i, site in enumerate(SITES):
        folder = root / site.name
        scanner = replace(SCANNERS[site.template], serial=site.serial, station=site.name.upper())
        subject = Subject(
            name=f"Volunteer^{site.name}", patient_id=f"{site.name}-SECRET", birth_date="19800101"
        )
        for key, spec in BRAIN.items():
            if key in site.omit:
                continue
            write_series(folder / "brain" / key, scanner, replace(spec, **site.deviations.get(key, {})),  # type: ignore[arg-type]
                         seed=seed + i, subject=subject, study_key=f"{site.name}-brain")  # fmt: skip
        synth = SynthScanner(key=site.name, template=site.template, serial=site.serial, site=site.name,
                             gain=site.gain, noise_sd=4.0, repeat_gain_cv=0.005, shift_mm=0.5, rotation_deg=0.5)  # fmt: skip
        synthesize(
            texture, folder / "phantom", scanners=[synth], repeats=repeats, seed=seed + 10 * i, same_day=True
        )  # repeatability: the repeats of one session
        out[site.name] = folder
    return out
