"""All ACR large-phantom measurements on one series, each with its ACR action limit.

Slice numbers follow the ACR guidance (1-11, slices sorted along the normal as hazen does; slice 1 holds the
ramps and wedges, slice 5 the grid, slice 7 is uniform). Limits: ACR "Phantom Test Guidance for Use of the Large
MRI Phantom for the ACR MRI Accreditation Program" (2018) and AAPM TG-284 (Jafari-Khouzani et al. 2022, JACMP
23(8):e13730, table 3). A measurement that cannot be made becomes a `QCProblem`; the others are still made.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from qckit.dicom.volume import Volume
from qckit.errors import QckitInputError
from qckit.phantoms.localize import Outline, find_outline
from qckit.phantoms.models import Phantom
from qckit.qc import geometric_accuracy, ghosting, slice_position, slice_thickness, snr, uniformity
from qckit.qc.results import Limit, QCMeasurement, QCProblem

ACR_GUIDANCE = "ACR large phantom test guidance 2018; AAPM TG-284 table 3"
N_SLICES = 11


@dataclass
class AcrResult:
    measurements: list[QCMeasurement] = field(default_factory=list)
    problems: list[QCProblem] = field(default_factory=list)
    overlays: dict[str, Any] = field(default_factory=dict)  # per slice: image + shapes, for the report


def optional_float(value: Any) -> float | None:
    """A header or index value as a float; None when it is missing, empty or not a number."""
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _header_float(vol: Volume, keyword: str) -> float | None:
    return optional_float(vol.header.get(keyword))


def _attempt(res: AcrResult, name: str, uid: str, fn: Callable[[], None]) -> None:
    try:
        fn()
    except (QckitInputError, ValueError, IndexError) as exc:
        res.problems.append(QCProblem(name, uid, str(exc)))


def _overlay(res: AcrResult, key: str, image: np.ndarray, pixel_mm: tuple[float, float]) -> dict[str, Any]:
    return res.overlays.setdefault(key, {"image": image, "pixel_mm": pixel_mm, "shapes": []})


def measure_acr(
    vol: Volume,
    phantom: Phantom,
    *,
    second: Volume | None = None,
    localizer: Volume | None = None,
    field_strength_t: float | None = None,
) -> AcrResult:
    """Every ACR measurement on the axial series `vol` (11 slices); `second` adds subtraction SNR (an identical
    acquisition), `localizer` the sagittal length."""
    res = AcrResult()
    uid = vol.series_uid
    px = (vol.spacing[0], vol.spacing[1])
    field_t = (
        field_strength_t if field_strength_t is not None else _header_float(vol, "MagneticFieldStrength")
    )
    if vol.n_slices != N_SLICES:
        res.problems.append(
            QCProblem(
                "series",
                uid,
                f"the ACR series has 11 slices, this one {vol.n_slices}: slice-specific "
                "measurements may be on the wrong slice",
            )
        )
    outlines: dict[int, Outline] = {}

    def outline(n: int) -> Outline:
        if n not in outlines:
            if n > vol.n_slices:
                raise QckitInputError(f"ACR slice {n} is missing: the series has {vol.n_slices} slice(s)")
            outlines[n] = find_outline(vol.array[n - 1], px[0], phantom, where=f"slice {n}")
        return outlines[n]

    def add(m: QCMeasurement) -> None:
        res.measurements.append(m)

    def do_slice7() -> None:
        img, o = vol.array[6], outline(7)
        ov = _overlay(res, "slice 7", img, px)
        u = uniformity.percent_integral_uniformity(img, o.centre_px, px[0])
        lim = uniformity.action_limit(field_t)
        add(
            QCMeasurement(
                "piu",
                u.piu,
                "%",
                "ACR small-ROI PIU (1 cm^2 ROIs in a 200 cm^2 ROI)",
                7,
                uid,
                Limit(lim, None, f">= {lim}%" + (" (3 T)" if lim < 87 else " (< 3 T)"), ACR_GUIDANCE),
                {"high": u.high, "low": u.low, "high_px": u.high_px, "low_px": u.low_px},
            )
        )
        ov["shapes"] += [
            ("circle", o.centre_px, u.large_radius_px, "large ROI"),
            ("circle", u.high_px, u.small_radius_px, "PIU high"),
            ("circle", u.low_px, u.small_radius_px, "PIU low"),
        ]

    def do_ghosting() -> None:
        img, o = vol.array[6], outline(7)
        g = ghosting.percent_signal_ghosting(img, o.centre_px, px[0])
        add(
            QCMeasurement(
                "psg",
                g.psg,
                "%",
                "ACR percent signal ghosting (four 10 cm^2 background ellipses)",
                7,
                uid,
                Limit(None, ghosting.ACTION_LIMIT_PERCENT, "<= 2.5%", ACR_GUIDANCE),
                {k: getattr(g, k) for k in ("large", "top", "bottom", "left", "right")},
            )
        )
        _overlay(res, "slice 7", img, px)["shapes"] += [
            ("mask", g.masks[k], None, f"ghost {k}") for k in ("top", "bottom", "left", "right")
        ]

    def do_snr() -> None:
        img, o = vol.array[6], outline(7)
        s = snr.snr_single_image(img, o.centre_px, px)
        add(
            QCMeasurement(
                "snr",
                s.snr,
                "",
                "single-image smoothing (McCann 2013), five 20 mm ROIs",
                7,
                uid,
                None,
                {"signals": s.signals, "noise_sds": s.noise_sds},
            )
        )
        _overlay(res, "slice 7", img, px)["shapes"] += [("rect", r, None, "SNR ROI") for r in s.rois]
        factor = _normalisation(vol)
        if factor is not None:
            add(
                QCMeasurement(
                    "snr_normalised",
                    s.snr * factor,
                    "",
                    "single-image SNR x hazen/MagNET "
                    "normalisation (voxel volume, bandwidth, averages, phase steps, TR)",
                    7,
                    uid,
                    None,
                    {"factor": factor},
                )
            )

    def do_subtraction() -> None:
        if second is None:
            return
        o = outline(7)
        if second.array.shape != vol.array.shape:
            raise QckitInputError(
                "the second acquisition for subtraction SNR has another matrix or slice count"
            )
        s = snr.snr_subtraction(vol.array[6], second.array[6], o.centre_px, px)
        add(
            QCMeasurement(
                "snr_subtraction",
                s.snr,
                "",
                "two-acquisition subtraction (NEMA MS 1-2008)",
                7,
                uid,
                None,
                {"second_series_uid": second.series_uid},
            )
        )

    def do_thickness() -> None:
        img, o = vol.array[0], outline(1)
        r = slice_thickness.slice_thickness(img, o.centre_px, px)
        nominal = vol.thickness if vol.thickness else 5.0
        tol = slice_thickness.ACTION_TOLERANCE_MM
        add(
            QCMeasurement(
                "slice_thickness",
                r.thickness_mm,
                "mm",
                "ACR crossed ramps, FWHM of half-band profiles",
                1,
                uid,
                Limit(nominal - tol, nominal + tol, f"{nominal:g} +- {tol} mm", ACR_GUIDANCE),
                {
                    "ramp_fwhm_mm": [r.top.fwhm_mm, r.bottom.fwhm_mm],
                    "tilt_deg": float(np.degrees(r.tilt_rad)),
                },
            )
        )
        _overlay(res, "slice 1", img, px)["shapes"].append(("ramps", r, None, "ramp profiles"))

    def do_position(n: int) -> Callable[[], None]:
        def run() -> None:
            img, o = vol.array[n - 1], outline(n)
            r = slice_position.bar_length_difference(img, o.centre_px, o.radius_px, px)
            lim = slice_position.ACTION_LIMIT_MM
            add(
                QCMeasurement(
                    f"slice_position_{n}",
                    r.bar_length_difference_mm,
                    "mm",
                    "ACR crossed wedges: bar length difference (right - left), twice the displacement",
                    n,
                    uid,
                    Limit(-lim, lim, f"|difference| <= {lim:g} mm", ACR_GUIDANCE),
                )
            )
            _overlay(res, f"slice {n}", img, px)["shapes"] += [
                ("point", r.left_end_px, None, "left bar end"),
                ("point", r.right_end_px, None, "right bar end"),
            ]

        return run

    def do_lengths(n: int, directions: dict[str, float]) -> Callable[[], None]:
        def run() -> None:
            img, o = vol.array[n - 1], outline(n)
            lim = geometric_accuracy.ACTION_LIMIT_MM
            for ln in geometric_accuracy.phantom_lengths(img, px, o.centre_px, directions):
                add(
                    QCMeasurement(
                        f"geometric_length_slice{n}_{ln.direction}",
                        ln.length_mm,
                        "mm",
                        "ACR inside diameter at half the mean phantom signal",
                        n,
                        uid,
                        Limit(190 - lim, 190 + lim, "190 +- 2 mm", ACR_GUIDANCE),
                    )
                )
                _overlay(res, f"slice {n}", img, px)["shapes"].append(
                    ("line", ln.start_xy, ln.end_xy, ln.direction)
                )

        return run

    _attempt(res, "piu", uid, do_slice7)
    _attempt(res, "psg", uid, do_ghosting)
    _attempt(res, "snr", uid, do_snr)
    _attempt(res, "snr_subtraction", uid, do_subtraction)
    _attempt(res, "slice_thickness", uid, do_thickness)
    _attempt(res, "slice_position_1", uid, do_position(1))
    _attempt(res, "slice_position_11", uid, do_position(N_SLICES))
    _attempt(res, "geometric_length_slice1", uid, do_lengths(1, {"horizontal": 0.0, "vertical": 90.0}))
    _attempt(res, "geometric_length_slice5", uid, do_lengths(5, geometric_accuracy.DIRECTIONS))
    if localizer is not None:
        _attempt(res, "geometric_length_sagittal", localizer.series_uid, lambda: _sagittal(res, localizer))
    return res


def _sagittal(res: AcrResult, loc: Volume) -> None:
    img = loc.array[loc.n_slices // 2]
    px = (loc.spacing[0], loc.spacing[1])
    (ln,) = geometric_accuracy.phantom_lengths(img, px, None, {"superior_inferior": 90.0})
    lim = geometric_accuracy.ACTION_LIMIT_MM
    res.measurements.append(
        QCMeasurement(
            "geometric_length_sagittal",
            ln.length_mm,
            "mm",
            "ACR end-to-end length on the sagittal localizer at half the mean signal",
            None,
            loc.series_uid,
            Limit(148 - lim, 148 + lim, "148 +- 2 mm", ACR_GUIDANCE),
        )
    )
    _overlay(res, "localizer", img, px)["shapes"].append(("line", ln.start_xy, ln.end_xy, "length"))


def _normalisation(vol: Volume) -> float | None:
    h = vol.header
    values = {k: _header_float(vol, k) for k in ("PixelBandwidth", "RepetitionTime", "NumberOfAverages")}
    if any(v is None for v in values.values()) or not vol.thickness:
        return None
    return snr.normalisation_factor(
        pixel_mm=(vol.spacing[0], vol.spacing[1]),
        slice_mm=float(vol.thickness),
        pixel_bandwidth_hz=values["PixelBandwidth"],
        rows=int(h.Rows),
        columns=int(h.Columns),
        averages=values["NumberOfAverages"],
        tr_ms=values["RepetitionTime"],
    )
