"""MagNET flood-field analyses of the QC engine (`magnet_snr`, `magnet_uniformity`, `magnet_ghosting`): each takes
every series of its roles (a MagNET session scans several coils and orientations) and measures each acquisition
with `qckit.analyses.magnet.flood`.

Measurement names carry the acquisition's key, `<coil>_<orientation>` (ReceiveCoilName and the slice orientation,
as the QC history trends each coil and orientation on its own): `snr_head_sagittal`, `snr_normalised_head_sagittal`,
`snr_subtraction_head_sagittal`, `snr_subtraction_normalised_head_sagittal`, `snr_map_head_sagittal`;
`fractional_uniformity_h_<key>` / `_v_`, `integral_uniformity_h_<key>` / `_v_`; `ghosting_<key>`.

Two series (or two frames of one series) with the same acquisition parameters are a repeat pair: the first gives
the single-image SNR, the pair the subtraction SNR. A flood acquired once has no subtraction SNR: that is an input
problem ("one of the pair is missing", exit 2 once the rest is written), not a pass. A series that does not hold
a flood (a localizer given as a flood: no object filling the centre, or a signal below its background) is an
input problem naming the series.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from qckit.analyses.base import Analysis, AnalysisContext, AnalysisOutput, SeriesView
from qckit.analyses.magnet.flood import (
    flood_centre,
    ghosting,
    scale_px,
    snr_map,
    snr_single,
    snr_subtraction,
    uniformity,
)
from qckit.analyses.mr.snr import volume_normalisation
from qckit.analyses.registry import register
from qckit.core.errors import QckitInputError
from qckit.core.results import Measurement, Overlay, Point, Problem, Rectangle
from qckit.core.values import optional_float

REFERENCE = (
    "IPEM Report 112 (MagNET); McCann et al. 2013 Phys Med Biol 58:3775; hazen (GSTT-CSC) MagNET tasks"
)
_PARAMS = ("Orientation", "ReceiveCoilName", "Rows", "Columns", "RepetitionTime", "EchoTime", "SliceThickness",
           "PixelSpacing", "NumberOfAverages", "PixelBandwidth", "FlipAngle")  # fmt: skip


def _slug(text: Any) -> str:
    return re.sub(r"[^a-z0-9]+", "_", str(text or "").lower()).strip("_")


def acquisition_key(v: SeriesView) -> str:
    """`<coil>_<orientation>` of a view (`coil` when the header names none)."""
    a = v.acquisition
    return f"{_slug(a.get('ReceiveCoilName')) or 'coil'}_{_slug(a.get('Orientation')) or 'oblique'}"


def _same(a: SeriesView, b: SeriesView) -> bool:
    return all(str(a.acquisition.get(k)) == str(b.acquisition.get(k)) for k in _PARAMS)


def groups(views: list[SeriesView]) -> dict[str, list[list[SeriesView]]]:
    """Views grouped by key, then into acquisitions with identical parameters (each a list: a repeat pair when
    two), in series order."""
    out: dict[str, list[list[SeriesView]]] = {}
    for v in views:
        sets = out.setdefault(acquisition_key(v), [])
        for s in sets:
            if _same(s[0], v):
                s.append(v)
                break
        else:
            sets.append([v])
    return out


def _names(key: str, k: int) -> str:
    return key if k == 0 else f"{key}_{k + 1}"


def _image(v: SeriesView) -> np.ndarray:
    return np.asarray(v.volume.array[v.volume.n_slices // 2], float)


def _label(v: SeriesView) -> str:
    a = v.acquisition
    desc = str(a.get("SeriesDescription") or "").strip()
    number = a.get("SeriesNumber")
    return (f"{desc!r} (series {number})" if desc else f"series {number}") + (
        f" frame {v.volume.time_index + 1}" if v.volume.time_index is not None else ""
    )


def _views(ctx: AnalysisContext) -> list[SeriesView]:
    seen, out = set(), []
    for views in ctx.sets.values():
        for v in views:
            if id(v) not in seen:
                seen.add(id(v))
                out.append(v)
    return out


def _single_images(ctx: AnalysisContext) -> list[tuple[str, SeriesView]]:
    """(key, view) of the first series of each acquisition of the roles."""
    return [
        (_names(key, k), acq[0]) for key, acqs in groups(_views(ctx)).items() for k, acq in enumerate(acqs)
    ]


def _centre(v: SeriesView) -> tuple[int, int]:
    """The flood object's centre; an input error for what is not a flood image: a localizer (planes of several
    orientations), or no object covering the image centre."""
    from qckit.phantoms.localize import body_mask

    orientation = str(v.acquisition.get("Orientation") or "")
    if orientation.lower() not in ("axial", "sagittal", "coronal"):
        raise QckitInputError(f"{_label(v)}: slices of {orientation or 'unknown'} orientation (a localizer?) given "
                              "as a flood: a MagNET flood is one axial, sagittal or coronal plane")  # fmt: skip
    img = _image(v)
    mask = body_mask(img)
    try:
        cx, cy = flood_centre(img, orientation, mask)
    except ValueError as exc:
        raise QckitInputError(f"{_label(v)}: {exc}") from None
    h, w = img.shape
    if not (w * 0.25 < cx < w * 0.75 and h * 0.25 < cy < h * 0.75) or not mask[cy, cx] or mask.mean() < 0.1:
        raise QckitInputError(f"{_label(v)}: no flood object filling the middle of the image ({mask.mean():.0%} of "
                              "it is object): a localizer or a small object given as a flood?")  # fmt: skip
    return cx, cy


def _m(name: str, value: float, unit: str, method: str, v: SeriesView, detail: dict[str, Any] | None = None,
       limit: Any = None) -> Measurement:  # fmt: skip
    return Measurement(name, float(value), unit, method, REFERENCE, limit=limit, series_uid=v.volume.series_uid,
                       role=v.role, detail=detail or {})  # fmt: skip


def _pe(v: SeriesView) -> str:
    """The series' phase-encoding direction (ROW / COL), "" when the header has none."""
    h = v.volume.header.get("InPlanePhaseEncodingDirection") or v.acquisition.get(
        "InPlanePhaseEncodingDirection"
    )
    return str(h or "").strip().upper()


def _unusable(name: str, v: SeriesView, exc: Exception) -> Problem:
    """The input problem of a series the analysis cannot use, naming the series."""
    text = str(exc) if isinstance(exc, QckitInputError) else f"{_label(v)}: {exc}"
    return Problem(name, v.volume.series_uid, text, input=True)


@register
class MagnetSnr(Analysis):
    name = "magnet_snr"
    title = "MagNET flood SNR (single image, subtraction, normalised, SNR map)"
    requires = ("series_set",)

    def run(self, ctx: AnalysisContext) -> AnalysisOutput:
        out = AnalysisOutput()
        kernel = int(ctx.param("kernel_px", 9))
        for key, acqs in groups(_views(ctx)).items():
            for k, acq in enumerate(acqs):
                tag, first = _names(key, k), acq[0]
                try:
                    centre = _centre(first)
                except QckitInputError as exc:
                    out.problems.append(_unusable(f"snr_{tag}", first, exc))
                    continue
                img = _image(first)
                cols = img.shape[1]
                geo = {"roi_px": scale_px(20, cols), "offset_px": scale_px(40, cols)}
                kern = scale_px(kernel, cols) | 1  # odd
                factor = volume_normalisation(first.volume)
                single = snr_single(img, centre, kernel=kern, **geo)
                detail = {"centre_px": list(centre), "signals": single.signals, "noise_sds": single.noise_sds,
                          "series": _label(first)}  # fmt: skip
                out.measurements.append(_m(f"snr_{tag}", single.snr, "", single.method, first, detail))
                if factor is not None:
                    out.measurements.append(_m(f"snr_normalised_{tag}", single.snr * factor, "",
                                               single.method + " x MagNET normalisation", first, {"factor": factor}))  # fmt: skip
                smap = snr_map(img, kernel=kern, **geo)
                out.measurements.append(_m(f"snr_map_{tag}", smap.snr, "", "ROI SNR of the SNR map (McCann 2013, "
                                           "hazen snr_map): mask centroid, boxcar with reflected edges", first))  # fmt: skip
                ov_key = f"SNR map {tag}"
                ctx.overlays[ov_key] = Overlay(ov_key, np.nan_to_num(smap.snr_map), first.pixel_mm,
                                               [Rectangle(c0, r0, c1, r1, "SNR ROI") for r0, r1, c0, c1 in smap.rois])  # fmt: skip
                ov_key = f"flood {tag}"
                ctx.overlays[ov_key] = Overlay(ov_key, img, first.pixel_mm,
                                               [*(Rectangle(c0, r0, c1, r1, "SNR ROI") for r0, r1, c0, c1 in single.rois),
                                                Point((float(centre[0]), float(centre[1])), "centre")])  # fmt: skip
                if len(acq) < 2:
                    out.problems.append(Problem(
                        f"snr_subtraction_{tag}", first.volume.series_uid,
                        f"{_label(first)}: one of the pair is missing: subtraction SNR needs two acquisitions with the "
                        "same parameters", input=True))  # fmt: skip
                    continue
                sub = snr_subtraction(img, _image(acq[1]), centre, **geo)
                d = {"second": _label(acq[1]), "centre_px": list(centre)}
                out.measurements.append(_m(f"snr_subtraction_{tag}", sub.snr, "", sub.method, first, d))
                if factor is not None:
                    out.measurements.append(_m(f"snr_subtraction_normalised_{tag}", sub.snr * factor, "",
                                               sub.method + " x MagNET normalisation", first, {"factor": factor}))  # fmt: skip
        return out


@register
class MagnetUniformity(Analysis):
    name = "magnet_uniformity"
    title = "MagNET fractional and integral uniformity"
    requires = ("series_set",)

    def run(self, ctx: AnalysisContext) -> AnalysisOutput:
        out = AnalysisOutput()
        for tag, v in _single_images(ctx):
            img = _image(v)
            cols = img.shape[1]
            try:
                centre = _centre(v)
                u = uniformity(img, centre, profile_px=scale_px(160, cols), width_px=scale_px(10, cols),
                               central_px=scale_px(10, cols))  # fmt: skip
            except (QckitInputError, ValueError) as exc:
                out.problems.append(_unusable(f"uniformity_{tag}", v, exc))
                continue
            d = {
                "centre_px": list(centre),
                "mode": u.mode,
                "profile_px": u.profile_px,
                "series": _label(v),
            }
            for name, value, unit, how in (
                (f"fractional_uniformity_h_{tag}", u.fractional_horizontal, "",
                 "share of the horizontal profile within 10 % of the central mode (IPEM Report 112)"),
                (f"fractional_uniformity_v_{tag}", u.fractional_vertical, "",
                 "share of the vertical profile within 10 % of the central mode (IPEM Report 112)"),
                (f"integral_uniformity_h_{tag}", u.integral_horizontal, "%",
                 "100 (1 - (max - min) / (max + min)) along the horizontal profile (NEMA MS 3 formula)"),
                (f"integral_uniformity_v_{tag}", u.integral_vertical, "%",
                 "100 (1 - (max - min) / (max + min)) along the vertical profile (NEMA MS 3 formula)"),
            ):  # fmt: skip
                out.measurements.append(
                    _m(name, value, unit, how, v, d, ctx.limit(measurement=name.split(f"_{tag}")[0]))
                )
            h, w, cx, cy = u.profile_px // 2, u.width_px // 2, *centre
            ov_key = f"uniformity {tag}"
            ctx.overlays[ov_key] = Overlay(ov_key, img, v.pixel_mm, [
                Rectangle(cx - h, cy - w, cx + h, cy + w, "horizontal profile"),
                Rectangle(cx - w, cy - h, cx + w, cy + h, "vertical profile")])  # fmt: skip
        return out


@register
class MagnetGhosting(Analysis):
    name = "magnet_ghosting"
    title = "MagNET ghosting (small bottle)"
    requires = ("series_set",)

    def run(self, ctx: AnalysisContext) -> AnalysisOutput:
        out = AnalysisOutput()
        for tag, v in _single_images(ctx):
            pe, img = _pe(v), _image(v)
            try:
                g = ghosting(img, float(v.pixel_mm[1]), pe)
            except ValueError as exc:
                out.problems.append(_unusable(f"ghosting_{tag}", v, exc))
                continue
            name = f"ghosting_{tag}"
            out.measurements.append(_m(name, g.percent, "%", "100 |ghost - background| / bottle (IPEM Report 112, "
                                       "small bottle)", v, {"phase_encoding": pe, "bbox": list(g.bbox),
                                                            "series": _label(v)}, ctx.limit(measurement="ghosting")))  # fmt: skip
            shapes = [Rectangle(g.phantom_roi[2], g.phantom_roi[0], g.phantom_roi[3], g.phantom_roi[1], "bottle ROI"),
                      Rectangle(g.ghost_roi[2], g.ghost_roi[0], g.ghost_roi[3], g.ghost_roi[1], "ghost region"),
                      *(Rectangle(c0, r0, c1, r1, "background ROI") for r0, r1, c0, c1 in g.noise_rois)]  # fmt: skip
            ctx.overlays[f"ghosting {tag}"] = Overlay(f"ghosting {tag}", img, v.pixel_mm, shapes)
        return out


@register
class MagnetSliceWidth(Analysis):
    name = "magnet_slice_width"
    title = "MagNET slice width (double wedge), linearity and distortion (rods)"
    requires = ("series_set",)

    def run(self, ctx: AnalysisContext) -> AnalysisOutput:
        from qckit.analyses.magnet.geometry import slice_width

        out = AnalysisOutput()
        for tag, v in _single_images(ctx):
            img = _image(v)
            try:
                s = slice_width(img, float(v.pixel_mm[1]), wedge_deg=float(ctx.param("wedge_deg", 11.3)))
            except ValueError as exc:
                out.problems.append(_unusable(f"slice_width_{tag}", v, exc))
                continue
            d = {"series": _label(v), "rods_px": s.rods.xy.round(2).tolist(), "fwhm_px": [s.top.fwhm_px, s.bottom.fwhm_px],
                 "coefficients": [s.coefficient_top, s.coefficient_bottom], "tilt_deg": s.tilt_deg}  # fmt: skip
            prescribed = optional_float(v.acquisition.get("SliceThickness"))
            for name, value, unit, how, lim in (
                ("slice_width", s.slice_width_mm, "mm", "double wedge, tilt-corrected (AAPM), rod-corrected",
                 ctx.limit(prescribed, "slice_width")),
                ("slice_width_top", s.top_mm, "mm", "top ramp FWHM x tan 11.3, rod-corrected", None),
                ("slice_width_bottom", s.bottom_mm, "mm", "bottom ramp FWHM x tan 11.3, rod-corrected", None),
                ("phantom_tilt", s.tilt_deg, "deg", "tilt of the wedges from the two ramps (AAPM)", None),
                ("linearity_h", s.rods.linearity_h, "mm", "mean horizontal distance of the outer rods (120 mm)",
                 ctx.limit(None, "linearity_h")),
                ("linearity_v", s.rods.linearity_v, "mm", "mean vertical distance of the outer rods (120 mm)",
                 ctx.limit(None, "linearity_v")),
                ("distortion_h", s.rods.distortion_h, "%", "CV of the horizontal rod distances", None),
                ("distortion_v", s.rods.distortion_v, "%", "CV of the vertical rod distances", None),
            ):  # fmt: skip
                out.measurements.append(_m(f"{name}_{tag}", value, unit, how, v, d, lim))
            shapes: list[Any] = [Point((float(x), float(y)), "rod") for x, y in s.rods.xy]
            g = s.rods.xy
            for fit in (s.top, s.bottom):
                shapes.append(Rectangle(float(int(g[3, 0])), fit.row - 10 / v.pixel_mm[0], float(int(g[5, 0])),
                                        fit.row + 10 / v.pixel_mm[0], "ramp profile"))  # fmt: skip
            ctx.overlays[f"slice width {tag}"] = Overlay(f"slice width {tag}", img, v.pixel_mm, shapes)
        return out


@register
class MagnetResolution(Analysis):
    name = "magnet_resolution"
    title = "MagNET spatial resolution (edge MTF in the frequency- and phase-encoding directions)"
    requires = ("series_set",)

    def run(self, ctx: AnalysisContext) -> AnalysisOutput:
        from qckit.analyses.magnet.resolution import resolution_mtf

        out = AnalysisOutput()
        for tag, v in _single_images(ctx):
            pe, img = _pe(v), _image(v)
            try:
                block, fe, ph = resolution_mtf(img, float(v.pixel_mm[1]), pe)
            except ValueError as exc:
                out.problems.append(_unusable(f"mtf50_{tag}", v, exc))
                continue
            for direction, e in (("fe", fe), ("pe", ph)):
                d = {"edge": e.edge, "edge_angle_deg": e.angle_deg, "series": _label(v), "phase_encoding": pe,
                     "mtf": [[f, m] for f, m in zip(e.frequencies, e.mtf, strict=True) if f <= 1.5 / v.pixel_mm[1]]}  # fmt: skip
                out.measurements.append(_m(f"mtf50_{direction}_{tag}", e.mtf50_per_mm, "1/mm",
                                           f"slanted-edge MTF50, {e.edge} edge of the block", v, d,
                                           ctx.limit(None, f"mtf50_{direction}")))  # fmt: skip
                out.measurements.append(_m(f"resolution_{direction}_{tag}", e.resolution_mm, "mm",
                                           "1 / (2 MTF50)", v, {"edge": e.edge}, ctx.limit(None, f"resolution_{direction}")))  # fmt: skip
            shapes: list[Any] = [Point(c, "block corner") for c in block.corners]
            shapes += [Rectangle(*e.roi, f"edge ROI {e.edge}") for e in (fe, ph)]
            ctx.overlays[f"resolution {tag}"] = Overlay(f"resolution {tag}", img, v.pixel_mm, shapes)
        return out


@register
class MagnetSlicePosition(Analysis):
    name = "magnet_slice_position"
    title = "MagNET slice position over the stack (crossed rods)"
    requires = ("series_set",)

    def run(self, ctx: AnalysisContext) -> AnalysisOutput:
        from qckit.analyses.magnet.slice_position import slice_positions

        out = AnalysisOutput()
        seen: set[str] = set()
        for v in _views(ctx):
            uid = v.volume.series_uid
            if uid in seen:
                continue
            seen.add(uid)
            try:
                sp = slice_positions(v.volume.array, v.positions, float(v.pixel_mm[1]),
                                     skip=int(ctx.param("skip", 10)), reference=int(ctx.param("reference", 18)))  # fmt: skip
            except ValueError as exc:
                out.problems.append(_unusable("slice_position", v, exc))
                continue
            d = {"errors_mm": sp.errors_mm, "positions_mm": sp.positions_mm, "rotation_deg": sp.rotation_deg,
                 "slices": [k + 1 for k in sp.kept], "series": _label(v)}  # fmt: skip
            out.measurements.append(_m("slice_position_max_abs_error_mm", sp.max_abs_error, "mm",
                                       "largest |measured - nominal| slice position over the kept slices", v, d,
                                       ctx.limit(None, "slice_position_max_abs_error_mm")))  # fmt: skip
            out.measurements.append(_m("slice_position_mean_abs_error_mm", sp.mean_abs_error, "mm",
                                       "mean |measured - nominal| slice position over the kept slices", v, d,
                                       ctx.limit(None, "slice_position_mean_abs_error_mm")))  # fmt: skip
            mid = sp.kept[len(sp.kept) // 2]
            lx, ly, rx, ry = sp.rods_px[len(sp.kept) // 2]
            key = f"slice position slice {mid + 1}"
            ctx.overlays[key] = Overlay(key, np.asarray(v.volume.array[mid], float), v.pixel_mm,
                                        [Point((lx, ly), "left rod"), Point((rx, ry), "right rod")])  # fmt: skip
        return out


__all__ = ["MagnetGhosting", "MagnetResolution", "MagnetSlicePosition", "MagnetSliceWidth", "MagnetSnr", "MagnetUniformity",
           "acquisition_key", "groups"]  # fmt: skip
