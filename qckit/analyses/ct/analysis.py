"""CatPhan analyses in the QC engine (`catphan`, role `ct`): the CT volume of the session measured by
`qckit.analyses.ct.catphan` and reported under the contract names of the CT issue: `hu_<material>`,
`hu_linearity_slope`, `hu_linearity_r2`, `water_hu`, `uniformity_centre_hu`, `uniformity_edge_max_diff_hu`,
`uniformity_index`, `noise_sd_hu`, `geometry_mean_node_distance_mm`, `phantom_roll_deg`, `slice_thickness_mm`, `low_contrast_seen`,
`nps_peak_frequency_per_mm`, `rmtf50_lp_mm`, `rmtf10_lp_mm`, `ttf50_per_mm`, and the CT number to relative
electron density curve (`hu_red_slope_low`, `hu_red_slope_high`; `qckit.analyses.ct.electron_density`). The model
(CatPhan 503, 504, 600, 604) is the phantom definition's `params.geometry`: its modules, inserts and line pairs are
data, so a model without CTP515 (the 503) has no low-contrast values (not "not measured": it has no such module).

CT number linearity: the least-squares line of the measured CT numbers on the nominal ones (AAPM TG-66, CT number
accuracy and linearity over the sensitometry materials); slope 1 and R^2 1 on a scanner whose CT numbers follow the
nominal ones.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from qckit.analyses.base import Analysis, AnalysisContext, AnalysisOutput
from qckit.analyses.ct.catphan import HU_ROI_MM, CatphanGeometry, measure_catphan
from qckit.analyses.ct.electron_density import hu_red_curve, relative_electron_density
from qckit.analyses.registry import register
from qckit.core.results import Circle, Measurement, Overlay, Point, Problem

REFERENCE = "CatPhan manuals (module geometry, nominal CT numbers); AAPM TG-66; pylinac (MIT) for comparison"


def _not_ct(name: str, v: Any, why: str) -> AnalysisOutput | None:
    """An input problem (exit 2) when the series is not CT (Modality of the series, else of its header): every CT
    analysis measures CT numbers."""
    if str(v.acquisition.get("Modality") or v.volume.header.get("Modality") or "") == "CT":
        return None
    return AnalysisOutput(problems=[Problem(name, v.volume.series_uid, f"the series is not CT (Modality): {why}",
                                            input=True)])  # fmt: skip


def linearity(measured: dict[str, float], nominal: dict[str, float]) -> tuple[float, float, float]:
    """(slope, intercept, R^2) of the least-squares line measured = slope x nominal + intercept (the nominal CT
    numbers of the model's inserts, `CatphanGeometry.inserts`)."""
    x = np.array([nominal[k] for k in measured])
    y = np.array([measured[k] for k in measured])
    slope, icpt = np.polyfit(x, y, 1)
    pred = slope * x + icpt
    r2 = 1 - float(np.sum((y - pred) ** 2) / np.sum((y - y.mean()) ** 2))
    return float(slope), float(icpt), r2


@register
class Catphan(Analysis):
    name = "catphan"
    title = "CatPhan CT numbers, linearity, electron density, geometry, uniformity, noise, resolution, low contrast"

    def run(self, ctx: AnalysisContext) -> AnalysisOutput:
        v = ctx.view()
        g = CatphanGeometry.from_params(ctx.spec.params, f"{ctx.phantom.name}: ")
        uid = v.volume.series_uid
        if not_ct := _not_ct(self.name, v, "a CatPhan is measured on CT or kV CBCT images"):
            return not_ct
        px = float(v.volume.spacing[0])
        try:
            r = measure_catphan(
                v.volume.array, v.positions, px, g, hu_roi_mm=float(ctx.param("hu_roi_mm", HU_ROI_MM))
            )
        except ValueError as exc:  # not a CatPhan, or a module outside the scan: the input, named (exit 2)
            return AnalysisOutput(problems=[Problem(self.name, uid, str(exc), input=True)])

        def m(name: str, value: float, unit: str, how: str, detail: dict | None = None) -> Measurement:
            return Measurement(name, float(value), unit, how, REFERENCE, limit=ctx.limit(None, name),
                               slice=r.origin_index + 1, series_uid=v.volume.series_uid, role=v.role,
                               detail=detail or {})  # fmt: skip

        out = AnalysisOutput()
        for name, hu in r.hu.items():
            out.measurements.append(m(f"hu_{name}", hu, "HU", "median CT number in the insert's disc (CTP404)",
                                      {"nominal_hu": g.inserts[name].hu}))  # fmt: skip
        slope, icpt, r2 = linearity(r.hu, {k: i.hu for k, i in g.inserts.items()})
        red = {k: (relative_electron_density(i.formula, i.density), r.hu[k]) for k, i in g.inserts.items()
               if i.formula and i.density}  # fmt: skip
        if red:
            curve = hu_red_curve(red, r.uniformity_hu["centre"])
            how = "least-squares slope of measured CT number on relative electron density, with water (RED 1) at the CTP486 centre"
            detail = {"materials": curve.materials, "red": curve.red, "hu": curve.hu}
            out.measurements += [
                m("hu_red_slope_low", curve.slope_low, "HU", how + ", materials with RED <= 1",
                  {**detail, "intercept": curve.intercept_low}),
                m("hu_red_slope_high", curve.slope_high, "HU", how + ", materials with RED >= 1",
                  {**detail, "intercept": curve.intercept_high}),
            ]  # fmt: skip
        out.measurements += [
            m("hu_linearity_slope", slope, "", "least-squares slope of measured on nominal CT numbers", {"intercept": icpt}),
            m("hu_linearity_r2", r2, "", "R^2 of that line"),
            m("water_hu", r.uniformity_hu["centre"], "HU", "median CT number in the 20 mm central disc of CTP486"),
            m("uniformity_centre_hu", r.uniformity_hu["centre"], "HU", "median in the 20 mm central disc of CTP486",
              {"slice": r.uniformity_index_slice + 1}),
            m("uniformity_edge_max_diff_hu", r.uniformity_edge_max_diff, "HU",
              "largest |edge - centre| of the four edge discs (51 mm out)", dict(r.uniformity_hu)),
            m("uniformity_index", r.uniformity_index, "%", "100 x largest |edge - centre| / (centre + 1000)"),
            m("noise_sd_hu", r.noise_sd_hu, "HU", "SD of the CT numbers in the central disc of CTP486"),
            m("geometry_mean_node_distance_mm", r.mean_node_distance, "mm", "mean of the four sides of the node square",
              {"sides_mm": r.node_distances_mm}),
            m("phantom_roll_deg", r.roll_deg, "deg", "angular offset of the air and Teflon inserts"),
            m("slice_thickness_mm", r.slice_thickness, "mm", "mean over the four wire ramps of FWHM x tan 23 degrees",
              {"ramps_mm": r.ramp_thickness_mm}),
            *([] if "ctp515" not in g.modules else [m("low_contrast_seen", float(r.low_contrast_seen), "", "CTP515 1 % targets (15-5 mm) detected: one-sided "
              "test against same-size measurements on uniform background, Benjamini-Hochberg q 0.05",
              {"targets": [{"diameter_mm": t.diameter_mm, "contrast_hu": t.contrast_hu, "cnr": t.cnr, "z": t.z,
                            "seen": t.seen} for t in r.low_contrast]})]),
            m("nps_peak_frequency_per_mm", r.nps.peak_frequency if r.nps else float("nan"), "1/mm",
              "peak of the radial noise power spectrum of CTP486 (ICRU 87)",
              {"frequencies": r.nps.frequencies, "radial_nps": r.nps.radial} if r.nps else {}),
        ]  # fmt: skip
        for pct in (50, 10):
            f = r.rmtf.at(pct) if r.rmtf is not None else None
            if f is None:
                out.problems.append(Problem(f"rmtf{pct}_lp_mm", v.volume.series_uid, f"the line-pair groups resolved "
                                            f"({', '.join(f'{x:g}' for x in (r.rmtf.frequencies if r.rmtf else []))} "
                                            f"lp/mm) do not reach {pct} % modulation"))  # fmt: skip
                continue
            out.measurements.append(m(f"rmtf{pct}_lp_mm", f, "lp/mm", f"frequency where pylinac's relative MTF of the "
                                      f"CTP528 bars falls to {pct} %", {"frequencies": r.rmtf.frequencies,
                                                                        "rmtf": r.rmtf.rmtf}))  # fmt: skip
        t = r.ttf.get("teflon")
        if t is not None and t.ttf50 is not None:
            out.measurements.append(m("ttf50_per_mm", t.ttf50, "1/mm", "TTF50 of the Teflon insert's edge (AAPM TG-233)",
                                      {k: {"ttf50": x.ttf50, "contrast_hu": x.contrast_hu} for k, x in r.ttf.items()}))  # fmt: skip
        else:
            out.problems.append(Problem("ttf50_per_mm", v.volume.series_uid, "the Teflon insert's TTF does not fall to "
                                        "0.5 within the sampled frequencies"))  # fmt: skip
        img = np.clip(
            np.asarray(v.volume.array[r.origin_index], float) + 1000, 0, 2000
        )  # window -1000..1000 HU
        shapes = [
            Circle(xy, float(ctx.param("hu_roi_mm", HU_ROI_MM)) / px, f"hu {name}")
            for name, xy in r.insert_px.items()
        ]
        shapes += [Point(xy, "geometry node") for xy in r.nodes_px]
        key = f"CTP404 slice {r.origin_index + 1}"
        ctx.overlays[key] = Overlay(key, img, v.pixel_mm, shapes)
        return out


__all__ = ["Catphan", "linearity"]


DENSITY_REFERENCE = (
    "Cann & Genant 1980 (J Comput Assist Tomogr 4:493); Kalender et al. 1995 (Med Phys 22:1589); EMA/CHMP/EWP/"
    "192217/2009 Rev. 1 (15 %)"
)


@register
class DensityCalibration(Analysis):
    """CT density calibration (bone mineral density) on a rod phantom: `density_slope`, `density_intercept_hu`,
    `density_fit_r2`, `density_see`, `density_max_abs_residual`, per test rod `density_<rod>` and
    `density_<rod>_bias_percent` (`qckit.analyses.ct.density`)."""

    name = "density_calibration"
    title = "CT density calibration: HU to mineral density, test-rod bias"

    def run(self, ctx: AnalysisContext) -> AnalysisOutput:
        from qckit.analyses.ct.density import DensityPhantom, measure_density

        v = ctx.view()
        d = DensityPhantom.from_params(ctx.spec.params, f"{ctx.phantom.name}: ")
        uid = v.volume.series_uid
        if not_ct := _not_ct(self.name, v, "a density calibration is measured on CT numbers"):
            return not_ct
        px = float(v.volume.spacing[0])
        try:
            r = measure_density(v.volume.array, v.positions, px, d, float(ctx.spec.z_mm or 0.0))
        except ValueError as exc:
            return AnalysisOutput(problems=[Problem(self.name, uid, str(exc), input=True)])
        unit = d.unit
        rods = {x.name: x for x in d.rods}

        def m(name: str, value: float, u: str, how: str, detail: dict | None = None) -> Measurement:
            return Measurement(name, float(value), u, how, DENSITY_REFERENCE, limit=ctx.limit(None, name),
                               slice=r.slices[len(r.slices) // 2] + 1, series_uid=uid, role=v.role,
                               detail=detail or {})  # fmt: skip

        table = {k: {"nominal": rods[k].density, "hu": r.hu[k], "role": rods[k].role} for k in r.hu}
        out = AnalysisOutput()
        out.measurements += [
            m("density_slope", r.slope, f"HU per {unit}", f"least-squares slope of the calibration rods' mean CT "
              f"number on their nominal {d.material} density", {"rods": table}),
            m("density_intercept_hu", r.intercept, "HU", "intercept of that line (CT number at zero density)"),
            m("density_fit_r2", r.r2, "", "R^2 of the calibration line"),
            m("density_see", r.see, unit, "standard error of the estimate, in density units"),
            m("density_max_abs_residual", max(abs(x) for x in r.residuals.values()), unit,
              "largest |residual| of a calibration rod, in density units", {"residuals": r.residuals}),
        ]  # fmt: skip
        for k, est in r.estimated.items():
            out.measurements.append(m(f"density_{k}", est, unit, f"test rod read through the calibration "
                                      f"(nominal {rods[k].density:g} {unit})", {"hu": r.hu[k]}))  # fmt: skip
            if k in r.bias_percent:
                out.measurements.append(m(f"density_{k}_bias_percent", r.bias_percent[k], "%",
                                          "100 x (estimated - nominal) / nominal"))  # fmt: skip
        img = np.clip(np.asarray(v.volume.array[r.slices[len(r.slices) // 2]], float) + 1000, 0, 2000)
        shapes = [Circle(xy, rods[k].radius_mm * d.roi_fraction / px, k) for k, xy in r.rods_px.items()]
        key = f"density rods, slice {r.slices[len(r.slices) // 2] + 1}"
        ctx.overlays[key] = Overlay(key, img, v.pixel_mm, shapes)
        return out


__all__ += ["DensityCalibration"]


ACR_CT_REFERENCE = (
    "ACR CT Accreditation Program, Phantom Testing Instructions; Droege & Morin 1982 (Med Phys 9:758); pylinac (MIT) "
    "for the ROI places"
)


@register
class AcrCt(Analysis):
    """The ACR CT phantom (Gammex 464): `hu_<material>`, `low_contrast_cnr`, `uniformity_centre_hu`,
    `uniformity_edge_max_diff_hu`, `water_hu`, `noise_sd_hu`, `geometry_bb_distance_mm`, `phantom_roll_deg`,
    `rmtf50_lp_mm`, `rmtf10_lp_mm` (`qckit.analyses.ct.acr_ct`)."""

    name = "acr_ct"
    title = "ACR CT phantom: CT numbers, low-contrast CNR, uniformity, noise, BB distance, relative MTF"

    def run(self, ctx: AnalysisContext) -> AnalysisOutput:
        from qckit.analyses.ct.acr_ct import AcrCtGeometry, measure_acr_ct

        v = ctx.view()
        g = AcrCtGeometry.from_params(ctx.spec.params, f"{ctx.phantom.name}: ")
        uid = v.volume.series_uid
        if not_ct := _not_ct(self.name, v, "the ACR CT phantom is measured on CT images"):
            return not_ct
        px = float(v.volume.spacing[0])
        hu_roi = float(ctx.param("hu_roi_mm", 8.0))
        try:
            r = measure_acr_ct(v.volume.array, v.positions, px, g, hu_roi_mm=hu_roi)
        except ValueError as exc:
            return AnalysisOutput(problems=[Problem(self.name, uid, str(exc), input=True)])

        def m(
            name: str, value: float, unit: str, how: str, module: str, detail: dict | None = None
        ) -> Measurement:
            return Measurement(name, float(value), unit, how, ACR_CT_REFERENCE, limit=ctx.limit(None, name),
                               slice=r.module_slices[module] + 1, series_uid=uid, role=v.role,
                               detail=detail or {})  # fmt: skip

        out = AnalysisOutput()
        for name, hu in r.hu.items():
            out.measurements.append(m(f"hu_{name}", hu, "HU", f"mean CT number in a {hu_roi:g} mm disc in the rod "
                                      "(module 1)", "module1", {"nominal_hu": g.rods[name].hu}))  # fmt: skip
        out.measurements += [
            m("phantom_roll_deg", r.roll_deg, "deg", "angular offset of the air and bone rods", "module1"),
            *([m("low_contrast_cnr", r.low_contrast_cnr, "", "|mean(25 mm rod) - mean(background)| / SD(background)",
                 "module2", {"contrast_hu": r.low_contrast_hu})] if np.isfinite(r.low_contrast_cnr) else []),
            m("water_hu", r.uniformity_hu["centre"], "HU", "mean CT number in the central disc of module 3", "module3"),
            m("uniformity_centre_hu", r.uniformity_hu["centre"], "HU", "mean in the central disc of module 3",
              "module3"),
            m("uniformity_edge_max_diff_hu", r.uniformity_edge_max_diff, "HU",
              "largest |edge - centre| of the four edge discs", "module3", dict(r.uniformity_hu)),
            m("noise_sd_hu", r.noise_sd_hu, "HU", "SD of the CT numbers in the central disc of module 3", "module3"),
            m("geometry_bb_distance_mm", r.bb_distance_mm, "mm", "distance between the two BBs of module 3 "
              "(nominal 100 mm)", "module3"),
        ]  # fmt: skip
        if not np.isfinite(r.low_contrast_cnr):
            out.problems.append(Problem("low_contrast_cnr", uid, "the background of module 2 shows no noise: a CNR "
                                        "cannot be formed (a processed or synthetic image?)"))  # fmt: skip
        for pct in (50, 10):
            f = r.rmtf_at(pct)
            if f is None:
                out.problems.append(Problem(f"rmtf{pct}_lp_mm", uid, f"the bar patterns' relative MTF "
                                            f"({', '.join(f'{x:.2f}' for x in r.rmtf)} at "
                                            f"{', '.join(f'{x:g}' for x in r.frequencies)} lp/mm) does not fall "
                                            f"to {pct} % within them"))  # fmt: skip
                continue
            out.measurements.append(m(f"rmtf{pct}_lp_mm", f, "lp/mm", f"frequency where the Droege-Morin relative "
                                      f"MTF of the bar patterns falls to {pct} %", "module4",
                                      {"frequencies": r.frequencies, "rmtf": r.rmtf}))  # fmt: skip
        k = r.module_slices["module1"]
        img = np.clip(np.asarray(v.volume.array[k], float) + 1000, 0, 2000)
        shapes = [Circle(xy, hu_roi / px, f"hu {name}") for name, xy in r.rods_px.items()]
        key = f"ACR CT module 1, slice {k + 1}"
        ctx.overlays[key] = Overlay(key, img, v.pixel_mm, shapes)
        return out


__all__ += ["AcrCt"]
