"""The relaxometry analyses of the QC engine: T1 (`relaxometry_t1`, role `ir`) and T2 (`relaxometry_t2`, role
`multi_echo`) of the system phantom's sphere arrays, one trended measurement per sphere.

Every series of the role is regrouped into stacks by slice (`stack.build_stacks`); each stack's plate is told by
its fitted values (`plate.identify_plate`) among the plates the spec lists (`params: {plates: [4, 5]}`), then
measured (`plate.measure_plate`). Measurement names: `t1_plate5_sphere03` (ms), judged against the sphere's
reference +- 15 % when it is measurable (the limit carries the reference), else recorded without a limit.
"""

from __future__ import annotations

from qckit.analyses.base import Analysis, AnalysisContext, AnalysisOutput
from qckit.analyses.registry import register
from qckit.analyses.relaxometry.plate import (
    EMA_PERCENT,
    EMA_SOURCE,
    T1_REFERENCE,
    T2_REFERENCE,
    PlateResult,
    measure_stack,
)
from qckit.analyses.relaxometry.stack import build_stacks
from qckit.core.errors import QckitInputError
from qckit.core.results import Circle, Limit, Measurement, Overlay, Problem, Verdict


def sphere_limit(reference_ms: float, source: str) -> Limit:
    d = EMA_PERCENT / 100.0
    return Limit(reference_ms * (1 - d), reference_ms * (1 + d),
                 f"{reference_ms:g} ms +- {EMA_PERCENT:g} %", f"{EMA_SOURCE}; reference: {source}")  # fmt: skip


def plate_measurements(res: PlateResult, role: str) -> list[Measurement]:
    """One measurement per fitted sphere (and the plate's share within 15 %)."""
    out = []
    p = res.parameter.lower()
    method = (
        f"{res.model}; ROI r {res.roi_radius_mm:g} mm; {len(res.stack.times)} {'TIs' if p == 't1' else 'TEs'}"
    )
    src = res.reference.source if res.reference is not None else ""
    uid = res.stack.series_uids[0]
    for s in res.spheres:
        if s.value is None:
            continue
        judged = s.verdict in (Verdict.PASS, Verdict.FAIL) and s.reference_ms is not None
        out.append(Measurement(
            name=f"{p}_plate{res.plate}_{s.name}", value=s.value, unit="ms", method=method,
            reference=T1_REFERENCE if p == "t1" else T2_REFERENCE,
            limit=sphere_limit(s.reference_ms, src) if judged else None,  # type: ignore[arg-type]
            series_uid=uid, role=role,
            detail={"se": s.se, "residual_rms": s.residual_rms, "n_points": s.n_points,
                    "reference_ms": s.reference_ms, "bias_percent": s.bias_percent, "verdict": str(s.verdict), "reason": s.reason,
                    "measurable_ms": list(res.measurable_ms)},
        ))  # fmt: skip
    if res.share_within is not None:
        out.append(Measurement(f"{p}_plate{res.plate}_share_within_15pct", res.share_within, "%",
                               f"share of the {len(res.judged)} measurable spheres within 15 % of reference",
                               EMA_SOURCE, series_uid=uid, role=role))  # fmt: skip
    return out


def roi_shapes(res: PlateResult) -> list[Circle]:
    r_px = res.roi_radius_mm / res.stack.pixel_mm[1]
    return [Circle((s.centre_px[0], s.centre_px[1]), r_px, f"ROI {s.verdict}") for s in res.spheres]


class _Relaxometry(Analysis):
    kind = "T1"
    requires = ("series_set",)

    def run(self, ctx: AnalysisContext) -> AnalysisOutput:
        out = AnalysisOutput()
        plates = [int(p) for p in ctx.param("plates", [a.plate for a in ctx.phantom.sphere_arrays])]
        arrays = [ctx.phantom.sphere_array(p) for p in plates]
        plate = ctx.param("plate", None)
        kw = {"t1_model": str(ctx.param("t1_model", "3p")), "floor_snr": float(ctx.param("floor_snr", 2.0)),
              "t1_rician": bool(ctx.param("t1_rician", False)), "plate": None if plate is None else int(plate)}  # fmt: skip
        for role, views in ctx.sets.items():
            measurable = next((v.measurable_ms for v in views if v.measurable_ms), None)
            for stack in build_stacks([v.volume for v in views], kind=self.kind):
                try:
                    res = measure_stack(stack, arrays, measurable_ms=measurable, **kw)  # type: ignore[arg-type]
                except QckitInputError as exc:
                    out.problems.append(Problem(self.name, stack.series_uids[0], str(exc)))
                    continue
                out.measurements += plate_measurements(res, role)
                p = res.parameter.lower()
                out.problems += [Problem(f"{p}_plate{res.plate}_{sph.name}", stack.series_uids[0], sph.reason)
                                 for sph in res.spheres if sph.verdict is Verdict.NOT_MEASURED and sph.counts]  # fmt: skip
                ov_key = f"{role} plate {res.plate}"
                ctx.overlays[ov_key] = Overlay(ov_key, abs(stack.images[0]), stack.pixel_mm, roi_shapes(res))
        if not out.measurements and not out.problems:
            raise QckitInputError(f"no {self.kind} acquisition (inversion or echo times) among the series")
        return out


@register
class RelaxometryT1(_Relaxometry):
    name = "relaxometry_t1"
    title = "T1 of the system phantom's spheres (inversion recovery)"
    kind = "T1"


@register
class RelaxometryT2(_Relaxometry):
    name = "relaxometry_t2"
    title = "T2 of the system phantom's spheres (multi-echo spin echo)"
    kind = "T2"
