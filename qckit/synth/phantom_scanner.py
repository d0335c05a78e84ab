"""Synthetic phantom scanner: render a phantom definition into DICOM series for N virtual scanners x M repeats.

Image model of one slice of one scan (all effects seeded, ground truth written to `ground_truth.json`):

    I = | g_scan * B(x, y) * (PSF * O)(x, y) + offset + n_re + i n_im |

O is the object (`qckit.phantoms.render`, integrated over the slice thickness and the pixel), PSF a Gaussian of
`psf_fwhm_mm`, B a smooth bias field (linear + quadratic, peak deviation `bias`), g_scan = gain x exp(e - s^2/2)
with e ~ N(0, s^2), s^2 = ln(1 + repeat_gain_cv^2), drawn per repeat: log-normal scan-to-scan calibration
variation with mean 1 and CV exactly `repeat_gain_cv` (the planted repeatability CV; the log-scale wCV estimates
it without bias),
n ~ N(0, noise_sd) per channel (magnitude of complex Gaussian noise gives the Rician statistics of MR magnitude
images; noise_sd 0 gives the noise-free image). Each repeat also gets an in-plane shift ~ N(0, shift_mm) and a
rotation ~ N(0, rotation_deg) of the phantom. Headers carry the scanner's vendor, model, serial and the series'
voxel size, slice thickness, TR and TE.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from scipy import ndimage

from qckit.core.envelope import stamp
from qckit.core.jsonio import write_json
from qckit.phantoms.models import Phantom
from qckit.phantoms.render import Renderer
from qckit.synth.dicom import SCANNERS, SeriesSpec, Subject, write_series


@dataclass(frozen=True)
class SynthScanner:
    """One virtual scanner: identity (from a vendor template in `qckit.synth.dicom.SCANNERS`) and physics."""

    key: str
    template: str = "siemens-skyra-3t"
    serial: str = "00001"
    site: str = "site-a"
    gain: float = 1.0
    offset: float = 0.0
    noise_sd: float = 8.0
    psf_fwhm_mm: float = 1.2
    bias: float = 0.0
    pixel_mm: float = 250.0 / 256.0
    matrix: int = 256
    slice_thickness_mm: float | None = None  # None: the phantom's prescribed stack
    slice_gap_mm: float | None = None
    repeat_gain_cv: float = 0.01
    shift_mm: float = 1.0
    rotation_deg: float = 1.0
    repetition_time_ms: float = 500.0
    echo_time_ms: float = 20.0

    def __post_init__(self) -> None:
        if self.template not in SCANNERS:
            raise ValueError(f"unknown scanner template {self.template!r} (one of {', '.join(SCANNERS)})")


IDEAL = SynthScanner(
    key="ideal", noise_sd=0.0, psf_fwhm_mm=0.0, repeat_gain_cv=0.0, shift_mm=0.0, rotation_deg=0.0
)

PRESET_SCANNERS: tuple[SynthScanner, ...] = (
    SynthScanner(
        key="scanner-a", template="siemens-skyra-3t", serial="45160", site="site-a",
        gain=1.00, noise_sd=8.0, psf_fwhm_mm=1.2, bias=0.03, repeat_gain_cv=0.015,
    ),
    SynthScanner(
        key="scanner-b", template="ge-mr750-3t", serial="000301496MR3T6MR", site="site-b",
        gain=1.25, offset=20.0, noise_sd=12.0, psf_fwhm_mm=1.8, bias=0.06, pixel_mm=230.0 / 256.0,
        slice_thickness_mm=4.0, repeat_gain_cv=0.02, repetition_time_ms=550.0, echo_time_ms=15.0,
    ),
    SynthScanner(
        key="scanner-c", template="philips-ingenia-1.5t", serial="42117", site="site-c",
        gain=0.8, noise_sd=15.0, psf_fwhm_mm=2.4, bias=0.08, pixel_mm=250.0 / 200.0, matrix=200,
        slice_thickness_mm=5.0, repeat_gain_cv=0.03, repetition_time_ms=600.0, echo_time_ms=14.0,
    ),
)  # fmt: skip


@dataclass
class RepeatTruth:
    scanner: str
    repeat: int
    folder: str
    gain: float
    shift_mm: tuple[float, float]
    rotation_deg: float
    series_uid: str


@dataclass
class SynthResult:
    root: Path
    phantom: str
    scanners: list[SynthScanner]
    repeats: list[RepeatTruth] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "phantom": self.phantom,
            "image_model": __doc__.split("\n\n")[1],
            "scanners": [asdict(s) for s in self.scanners],
            "repeats": [asdict(r) for r in self.repeats],
        }


def _stack(phantom: Phantom, scanner: SynthScanner) -> tuple[int, float, float]:
    """(n_slices, thickness, gap): the scanner's thickness over the prescribed stack's extent."""
    st = phantom.stack
    thickness = scanner.slice_thickness_mm or st.slice_thickness_mm
    gap = scanner.slice_gap_mm if scanner.slice_gap_mm is not None else st.slice_gap_mm
    if scanner.slice_thickness_mm is None and scanner.slice_gap_mm is None:
        return st.n_slices, thickness, gap
    extent = st.n_slices * (st.slice_thickness_mm + st.slice_gap_mm)
    return max(1, int(round(extent / (thickness + gap)))), thickness, gap


def _bias_field(rows: int, columns: int, bias: float) -> np.ndarray:
    if bias == 0:
        return np.ones((rows, columns))
    y, x = np.mgrid[-1 : 1 : rows * 1j, -1 : 1 : columns * 1j]
    field_ = 0.6 * x + 0.3 * y - 0.4 * (x * x + y * y)
    return 1.0 + bias * field_ / np.abs(field_).max()


def render_scan(
    renderer: Renderer,
    scanner: SynthScanner,
    rng: np.random.Generator,
    *,
    gain: float,
    shift_mm: tuple[float, float],
    rotation_deg: float,
) -> list[np.ndarray]:
    """The slices (uint16) of one scan."""
    n, thickness, gap = _stack(renderer.phantom, scanner)
    step = thickness + gap
    bias = _bias_field(scanner.matrix, scanner.matrix, scanner.bias)
    sigma_px = scanner.psf_fwhm_mm / (2 * math.sqrt(2 * math.log(2))) / scanner.pixel_mm
    centres = [(k - (n - 1) / 2) * step for k in range(n)]
    objs = renderer.slices(
        scanner.matrix,
        scanner.matrix,
        scanner.pixel_mm,
        [(zc - thickness / 2, zc + thickness / 2) for zc in centres],
        shift_mm=shift_mm,
        rotation_deg=rotation_deg,
    )
    out = []
    for obj in objs:
        if sigma_px > 0:
            obj = ndimage.gaussian_filter(obj, sigma_px, mode="constant")
        signal = gain * bias * obj + scanner.offset
        if scanner.noise_sd > 0:
            re = signal + rng.normal(0, scanner.noise_sd, signal.shape)
            im = rng.normal(0, scanner.noise_sd, signal.shape)
            signal = np.hypot(re, im)
        out.append(np.clip(np.rint(signal), 0, 65535).astype(np.uint16))
    return out


def synthesize(
    phantom: Phantom,
    root: str | Path,
    *,
    scanners: list[SynthScanner] | tuple[SynthScanner, ...] = PRESET_SCANNERS,
    repeats: int = 3,
    seed: int = 0,
    date: str = "20260105",
    same_day: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> SynthResult:
    """Write `root/<scanner>/rep<NN>/` DICOM series and `root/ground_truth.json`; return the ground truth.

    `progress(done, total)` is called after each series."""
    if repeats < 1:
        raise ValueError("repeats must be >= 1")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    renderer = Renderer(phantom)
    result = SynthResult(root=root, phantom=phantom.name, scanners=list(scanners))
    for s_idx, sc in enumerate(scanners):
        vs = replace(SCANNERS[sc.template], key=sc.key, serial=sc.serial, station=f"{sc.key.upper()}")
        n, thickness, gap = _stack(phantom, sc)
        for rep in range(1, repeats + 1):
            rng = np.random.default_rng([seed, s_idx, rep])
            s2 = math.log1p(sc.repeat_gain_cv**2)
            gain = (
                sc.gain * math.exp(rng.normal(0.0, math.sqrt(s2)) - s2 / 2) if sc.repeat_gain_cv else sc.gain
            )
            shift = (
                (float(rng.normal(0, sc.shift_mm)), float(rng.normal(0, sc.shift_mm)))
                if sc.shift_mm
                else (
                    0.0,
                    0.0,
                )
            )
            rot = float(rng.normal(0, sc.rotation_deg)) if sc.rotation_deg else 0.0
            pixels = render_scan(renderer, sc, rng, gain=gain, shift_mm=shift, rotation_deg=rot)
            spec = SeriesSpec(
                f"{phantom.name} T1 SE",
                100 + rep,
                n_slices=n,
                rows=sc.matrix,
                columns=sc.matrix,
                pixel_spacing_mm=sc.pixel_mm,
                slice_thickness_mm=thickness,
                slice_gap_mm=gap,
                repetition_time_ms=sc.repetition_time_ms,
                echo_times_ms=(sc.echo_time_ms,),
            )
            # repeats on consecutive days (a day-to-day study), or all on `date` (`same_day`: one session's repeats)
            day = date if same_day or int(date[-2:]) + repeats > 28 else f"{int(date) + rep - 1:08d}"
            folder = root / sc.key / f"rep{rep:02d}"
            written = write_series(
                folder,
                vs,
                spec,
                seed=seed,
                subject=Subject(name=f"Phantom^{phantom.name}", patient_id=f"PH-{sc.key}", birth_date=""),
                study_key=f"rep{rep}",
                date=day,
                pixels=pixels,
            )
            result.repeats.append(
                RepeatTruth(
                    scanner=sc.key,
                    repeat=rep,
                    folder=str(folder.relative_to(root)),
                    gain=gain,
                    shift_mm=shift,
                    rotation_deg=rot,
                    series_uid=written.series_uid,
                )
            )
            if progress is not None:
                progress(len(result.repeats), len(scanners) * repeats)
    write_json(root / "ground_truth.json", stamp(result.to_dict(), kind="phantom-synth",
                                                 inputs={"phantom": phantom.name, "seed": seed}))  # fmt: skip
    return result
