"""The diffusion analysis of the QC engine (`diffusion_adc`, roles `dwi` and `adc_map`): the ADC of every vial of
the diffusion phantom, one trended measurement per vial and image set.

The role's volumes (one per series and b-value) are grouped into image sets (`qckit.dicom.diffusion.image_sets`)
and each measured (`vials.measure_image_set`, at the spec's `temperature_c`). Measurement names: `adc_vial01`
(µm²/s) for the first image set, `adc_vial01_set2` for a repeat; each judged against its reference +- 15 % (the
limit carries the reference); `adc_b_linearity_max` (%) is recorded beside them.
"""

from __future__ import annotations

from qckit.analyses.base import Analysis, AnalysisContext, AnalysisOutput
from qckit.analyses.diffusion.vials import EMA_PERCENT, ImageSetResult, measure_image_set, vial_repeatability
from qckit.analyses.registry import register
from qckit.core.errors import QckitInputError
from qckit.core.results import Circle, Limit, Measurement, Overlay, Problem, Verdict
from qckit.dicom.diffusion import image_sets

EMA_SOURCE = "EMA guideline on bioanalytical method validation (EMEA/CHMP/EWP/192217/2009 Rev. 1): accuracy within 15 %"
REPEATABILITY_REFERENCE = (
    "QIBA metrology: wCV (log scale) with chi-square CI (Raunig et al. 2015, SMMR 24:27-67)"
)
METHOD_REFERENCE = (
    "mono-exponential ADC, weighted log-linear (Jones & Basser 2004); Rician floor (Gudbjartsson & Patz 1995)"
)


def set_measurements(res: ImageSetResult, suffix: str, role: str, uid: str) -> list[Measurement]:
    out = []
    for v in res.vials:
        if v.adc_um2_per_s is None or v.fit is None or v.reference_um2_per_s is None:
            continue
        ref, d = v.reference_um2_per_s, EMA_PERCENT / 100
        limit = Limit(ref * (1 - d), ref * (1 + d), f"{ref:.4g} um2/s +- {EMA_PERCENT:g} %",
                      f"{EMA_SOURCE}; reference: {v.reference_how}")  # fmt: skip
        out.append(Measurement(
            name=f"adc_{v.name}{suffix}", value=v.adc_um2_per_s, unit="um2/s",
            method=f"{v.fit.method}; ROI r {res.roi_radius_mm:g} mm x {len(res.slab)} slices; b {res.b_values}",
            reference=METHOD_REFERENCE, limit=limit, series_uid=uid, role=role,
            detail={"se": v.fit.se_um2_per_s, "pvp_percent": v.pvp_percent, "bias_percent": v.bias_percent,
                    "scanner_map_um2_per_s": v.scanner_map_um2_per_s, "linearity_percent": v.linearity_percent,
                    "snr_b0": v.snr_b0, "temperature_c": res.temperature_c},
        ))  # fmt: skip
    lin = [
        v.linearity_percent
        for v in res.vials
        if v.linearity_percent is not None and v.adc_um2_per_s is not None
    ]
    if lin:
        out.append(Measurement(f"adc_b_linearity_max{suffix}", max(lin), "%",
                               "largest |ADC(b-pair) - ADC| / ADC over the vials", METHOD_REFERENCE,
                               series_uid=uid, role=role))  # fmt: skip
    return out


@register
class DiffusionAdc(Analysis):
    name = "diffusion_adc"
    title = "ADC of the diffusion phantom's vials"
    requires = ("series_set",)

    def run(self, ctx: AnalysisContext) -> AnalysisOutput:
        out = AnalysisOutput()
        vials = ctx.phantom.vials
        if vials is None:
            raise QckitInputError(f"phantom {ctx.phantom.name} has no diffusion vials")
        temp = ctx.param("temperature_c", vials.default_temperature_c)
        views = [v for views in ctx.sets.values() for v in views]
        sets, bad = image_sets([(v.acquisition, [v.volume]) for v in views])
        out.problems += [Problem(self.name, "", b) for b in bad]
        if not sets:
            raise QckitInputError(
                "no complete DWI image set (every b-value of one acquisition) among the series"
            )
        done: list[ImageSetResult] = []
        for k, s in enumerate(sets):
            suffix = "" if k == 0 else f"_set{k + 1}"
            uid = next(iter(s.volumes.values())).series_uid
            try:
                res = measure_image_set(s, vials, temperature_c=float(temp))
            except QckitInputError as exc:
                out.problems.append(Problem(f"{self.name}{suffix}", uid, str(exc)))
                continue
            role = "dwi"
            done.append(res)
            out.measurements += set_measurements(res, suffix, role, uid)
            out.problems += [Problem(f"adc_{v.name}{suffix}", uid, v.reason) for v in res.vials
                             if v.verdict is Verdict.NOT_MEASURED]  # fmt: skip
            if res.b0_image is not None:
                r_px = res.roi_radius_mm / res.pixel_mm[1]
                key = f"dwi {s.label}"
                ctx.overlays[key] = Overlay(key, abs(res.b0_image), res.pixel_mm,
                                            [Circle(v.centre_px, r_px, f"{v.name} {v.verdict}") for v in res.vials])  # fmt: skip
        rep = vial_repeatability(done)  # repeats in one session: short-term repeatability over the vials
        if rep is not None:
            out.measurements.append(Measurement(
                "adc_repeatability_wcv", float(rep.wcv), "%",
                f"wCV of {rep.n_vials} vials over {rep.n_repeats} image sets of one session (95 % CI "
                f"{rep.stats.wcv_ci[0]:.3g}-{rep.stats.wcv_ci[1]:.3g} %)", REPEATABILITY_REFERENCE, role="dwi",
                series_uid=next(iter(sets[0].volumes.values())).series_uid,
                detail={"ci": list(rep.stats.wcv_ci), "n_vials": rep.n_vials, "n_repeats": rep.n_repeats}))  # fmt: skip
        return out
