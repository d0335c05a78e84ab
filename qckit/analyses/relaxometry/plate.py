"""T1 or T2 of every sphere of one plate: localise, measure ROI means, fit, judge against the reference.

Per sphere: the mean of a circular ROI (`roi_radius_mm`, pixels whose centres lie within it) at each TI or TE,
the fit of `qckit.analyses.relaxometry.fit` (T1: inversion recovery with the TR of each TI, signed images as they
are, magnitude images with polarity restoration; T2: multi-echo, first echo excluded, Rician noise floor), its
standard error, RMS residual and number of points; then the accuracy verdict:

    bias = 100 (value - reference) / reference          (qckit.metrology.precision.relative_bias)
    accurate when |bias| <= 15 %                        (EMA/CHMP/EWP/192217/2009 rev.1, section 4.1.5)

judged only for spheres whose reference lies in the sequence's measurable range. The range is declared per
protocol (`measurable: {min, max}` on the series entry); without a declaration it is
T1 in [TI_min / 2, 3 TI_max], T2 in [TE_min, 3 TE_max] over the times fitted (TEs after the excluded first
echo). At T = 3 t_max the signal changes by only 1 - exp(-1/3) = 28 % over the sampled times; at T1 = TI_min / 2
the inversion still shows as 2 exp(-2) = 27 % of S0 at the first TI, and at T2 = TE_min the first fitted echo
keeps exp(-1) = 37 % of S0 (shorter T2s leave one or two echoes above the noise). A sphere outside the range is
"not measurable", never failed.

Noise for the Rician floor (T2): sigma from the background outside the object, which is Rayleigh-distributed
in a magnitude image: sigma = mean / sqrt(pi / 2) (Gudbjartsson & Patz 1995); a zero-filled (masked) background
gives no sigma and the plain exponential is fitted (noted).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from qckit.analyses.relaxometry.fit import (
    RelaxFit,
    fit_failure,
    fit_t1,
    fit_t2,
    grid_fit,
    ir_signal,
    rician_mean,
)
from qckit.analyses.relaxometry.locate import ArrayFit, hough_map, locate_array, object_mask
from qckit.analyses.relaxometry.stack import RelaxStack
from qckit.core.errors import QckitInputError
from qckit.core.results import Verdict
from qckit.metrology.precision import relative_bias
from qckit.phantoms.models import ReferenceSet, SphereArray

EMA_PERCENT = 15.0
EMA_SOURCE = "EMA/CHMP/EWP/192217/2009 rev.1 (2011), section 4.1.5: bias within 15 %"
T1_REFERENCE = ("inversion recovery S = S0 (1 - k exp(-TI/T1) + exp(-TR/T1)) (Barral et al. 2010, Magn Reson Med "
                "64:1057-1067); magnitude polarity restored (NLS-PR)")  # fmt: skip
T2_REFERENCE = ("multi-echo spin echo S = S0 exp(-TE/T2), first echo excluded (McPhee & Wilman 2018, JMRI "
                "48:1432-1440), Rician noise floor (Gudbjartsson & Patz 1995; Raya et al. 2010, MRM 63:181-193)")  # fmt: skip


@dataclass
class SphereResult:
    index: int  # 0-based, in the array's order
    name: str
    value: float | None
    se: float | None
    residual_rms: float | None
    n_points: int
    reference_ms: float | None
    measurable: bool
    scored: bool
    bias_percent: float | None
    verdict: (
        Verdict  # pass | fail (judged); recorded (measured, not judged: `reason`); not measured (fit failed)
    )
    centre_px: tuple[float, float]
    means: list[float]
    fit_params: dict[str, float] = field(default_factory=dict)
    error: str = ""
    reason: str = ""  # why a sphere is recorded but not judged, or not measured
    n_clipped: int = 0  # points left out of the fit because the signal was clipped

    def to_dict(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in ("index", "name", "value", "se", "residual_rms", "n_points",
                "reference_ms", "measurable", "scored", "bias_percent", "error", "reason", "n_clipped")} | {
                "verdict": str(self.verdict), "centre_px": list(self.centre_px), "means": self.means,
                "fit_params": self.fit_params}  # fmt: skip

    @property
    def counts(self) -> bool:
        """Whether the sphere should have been judged: scored, with a reference inside the measurable range."""
        return self.scored and self.measurable


@dataclass
class PlateResult:
    parameter: str  # T1 | T2
    plate: int
    stack: RelaxStack
    array_fit: ArrayFit
    spheres: list[SphereResult]
    reference: ReferenceSet | None
    measurable_ms: tuple[float, float]
    model: str
    sigma: float | None
    roi_radius_mm: float
    notes: list[str] = field(default_factory=list)

    @property
    def judged(self) -> list[SphereResult]:
        return [s for s in self.spheres if s.verdict in (Verdict.PASS, Verdict.FAIL)]

    @property
    def share_within(self) -> float | None:
        j = self.judged
        return None if not j else 100.0 * sum(s.verdict is Verdict.PASS for s in j) / len(j)

    @property
    def verdict(self) -> Verdict:
        """FAIL when a judged sphere is beyond 15 %; INCOMPLETE when a sphere that should be judged could not be
        fitted; NOT_MEASURED when none was judged; else PASS."""
        j = self.judged
        if any(s.verdict is Verdict.FAIL for s in j):
            return Verdict.FAIL
        if not j:
            return Verdict.NOT_MEASURED
        lost = [s for s in self.spheres if s.verdict is Verdict.NOT_MEASURED and s.counts]
        return Verdict.INCOMPLETE if lost else Verdict.PASS

    def to_dict(self) -> dict[str, object]:
        return {
            "parameter": self.parameter,
            "plate": self.plate,
            "verdict": str(self.verdict),
            "share_within_15_percent": self.share_within,
            "model": self.model,
            "noise_sigma": self.sigma,
            "roi_radius_mm": self.roi_radius_mm,
            "measurable_ms": list(self.measurable_ms),
            "times_ms": self.stack.times.tolist(),
            "tr_ms": [None if not np.isfinite(t) else float(t) for t in self.stack.trs],
            "signed": self.stack.signed,
            "series_uids": self.stack.series_uids,
            "slice_position_mm": self.stack.position_mm,
            "field_strength_t": self.stack.field_strength_t,
            "localisation": self.array_fit.to_dict(),
            "reference": None if self.reference is None else self.reference.model_dump(),
            "spheres": [s.to_dict() for s in self.spheres],
            "curves": fit_curves(self),
            "notes": self.notes,
        }


def fit_curves(res: PlateResult, n: int = 80) -> list[dict[str, list[float]]]:
    """Per sphere: the fitted model on a fine time grid (for plots), signed as fitted (`t`, `s`)."""
    t = np.linspace(0.0, float(res.stack.times.max()) * 1.05, n)
    tr = np.interp(t, res.stack.times, res.stack.trs) if np.all(np.isfinite(res.stack.trs)) else None
    out = []
    for s in res.spheres:
        p = s.fit_params
        if s.value is None or not p:
            out.append({"t": [], "s": []})
            continue
        if res.parameter == "T1":
            y = ir_signal(t, p["s0"], p["t1"], p.get("k", 2.0), tr)
            y = y if res.stack.signed else np.abs(y)
        else:
            y = rician_mean(p["s0"] * np.exp(-t / p["t2"]), p.get("sigma", 0.0))
        out.append({"t": t.round(3).tolist(), "s": np.asarray(y).round(4).tolist()})
    return out


def roi_masks(shape: tuple[int, int], centres_px: np.ndarray, radius_mm: float, pixel_mm: tuple[float, float]
              ) -> np.ndarray:  # fmt: skip
    """Boolean masks (n, rows, cols): pixels whose centres lie within `radius_mm` of each centre."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    out = np.zeros((len(centres_px), *shape), bool)
    for i, (x, y) in enumerate(centres_px):
        out[i] = ((xx - x) * pixel_mm[1]) ** 2 + ((yy - y) * pixel_mm[0]) ** 2 <= radius_mm**2
    return out


def background_sigma(images: np.ndarray) -> float | None:
    """Rayleigh estimate of the noise SD from pixels well outside the object (None: no usable background)."""
    obj = ndimage.binary_dilation(ndimage.binary_fill_holes(object_mask(images)),
                                  iterations=max(3, images.shape[1] // 32))  # fmt: skip
    bg = np.abs(images[:, ~obj])
    if bg.size < 200 or np.mean(bg == 0) > 0.5:
        return None
    return float(np.mean(bg) / np.sqrt(np.pi / 2.0))


def default_range(parameter: str, times: np.ndarray, exclude_first: bool = True) -> tuple[float, float]:
    """qckit's default measurable range (module docstring)."""
    t = np.sort(np.unique(times))
    if parameter == "T2" and exclude_first and len(t) > 1:
        t = t[1:]
    low = t[0] / 2.0 if parameter == "T1" else t[0]
    return float(low), float(3.0 * t[-1])


def located_means(stack: RelaxStack, array: SphereArray) -> tuple[ArrayFit, np.ndarray]:
    """The array's localisation on `stack` and each ROI's mean per time (spheres x times), cached on the stack."""
    cached = stack.cache.get(("means", array.plate))
    if cached is not None:
        return cached  # type: ignore[return-value]
    layout = np.array([s.center_mm for s in array.spheres], float)
    key = ("hough", array.sphere_radius_mm)
    if key not in stack.cache:
        stack.cache[key] = hough_map(stack.images, array.sphere_radius_mm / float(np.mean(stack.pixel_mm)))
    fit = locate_array(stack.images, stack.pixel_mm, layout, sphere_radius_mm=array.sphere_radius_mm,
                       roi_radius_mm=array.roi_radius_mm, max_rotation_deg=array.max_rotation_deg,
                       fit_points=np.array([s.scored for s in array.spheres]),
                       hmap=stack.cache[key])  # type: ignore[arg-type]  # fmt: skip
    masks = roi_masks(stack.images.shape[1:], fit.centres_px, array.roi_radius_mm, stack.pixel_mm)
    flat = stack.images.reshape(len(stack.images), -1)
    counts = masks.reshape(len(masks), -1).sum(1)
    if np.any(counts == 0):
        raise QckitInputError(f"ROI radius {array.roi_radius_mm} mm holds no pixel at this resolution")
    means = (masks.reshape(len(masks), -1).astype(float) @ flat.T) / counts[:, None]
    clipped = clipped_voxels(stack)
    stack.cache[("clipped", array.plate)] = (masks.reshape(len(masks), -1).astype(float)
                                             @ clipped.reshape(len(clipped), -1).T.astype(float)) > 0  # fmt: skip
    stack.cache[("means", array.plate)] = (fit, means)
    return fit, means


CLIP_PLATEAU = 20  # voxels sharing an image's maximum exactly: a saturated (clipped) signal, not a peak


def clipped_voxels(stack: RelaxStack) -> np.ndarray:
    """Per image, the voxels whose signal is clipped: at the stored maximum (2^BitsStored - 1, on the image's
    scale) or on a plateau of at least `CLIP_PLATEAU` voxels sharing the image's maximum exactly (a reconstruction
    or window ceiling such as 4095 in a 16-bit container). A clipped point is excluded from a sphere's fit (the
    curve is flattened there; MR-BIAS excludes such points too)."""
    out = np.zeros(stack.images.shape, bool)
    for k, img in enumerate(stack.images):
        top = float(np.max(img))
        if top <= 0:
            continue
        at_top = img >= top
        if int(at_top.sum()) >= CLIP_PLATEAU:
            out[k] = at_top
    return out


def measure_plate(
    stack: RelaxStack,
    array: SphereArray,
    *,
    reference: ReferenceSet | None,
    measurable_ms: tuple[float, float] | None = None,
    t1_model: str = "3p",
    exclude_first_echo: bool = True,
    floor_snr: float = 2.0,
    t1_rician: bool = False,
) -> PlateResult:
    """Measure `stack` (T1 or T2) on the sphere array `array` (module docstring)."""
    stack.check()
    param = stack.kind
    fit, means = located_means(stack, array)
    notes: list[str] = list(stack.notes)  # e.g. the physical scale applied per series
    if stack.field_strength_t is None and reference is not None:
        notes.append(
            f"no MagneticFieldStrength in the header: the {reference.field_strength_t:g} T references used"
        )
    sigma = None if stack.signed else background_sigma(stack.images)
    if sigma is None and not stack.signed and (param == "T2" or t1_rician):
        notes.append(f"no noise background (zero-filled): {param} fitted without the Rician noise model")
    lo, hi = measurable_ms or default_range(param, stack.times, exclude_first_echo)
    tr = stack.trs if np.all(np.isfinite(stack.trs)) else None
    if param == "T1" and tr is None:
        notes.append("TR missing: full recovery assumed (no TR term)")
    results = []
    model = ""
    clipped = stack.cache.get(("clipped", array.plate))
    for i, sph in enumerate(array.spheres):
        ref = None if reference is None else reference.values_ms[i]
        y = means[i]
        centre = (float(fit.centres_px[i, 0]), float(fit.centres_px[i, 1]))
        use = ~clipped[i] if isinstance(clipped, np.ndarray) else np.ones(len(y), bool)
        n_clipped = int((~use).sum())
        try:
            rf = _fit(param, stack, y, tr, t1_model, sigma if param == "T2" or t1_rician else None,
                      exclude_first_echo, floor_snr, use)  # fmt: skip
            why = fit_failure(param, rf, y[use], stack.times[use])
            if why:
                raise QckitInputError(why)
        except (QckitInputError, ValueError, np.linalg.LinAlgError) as exc:
            measurable = ref is not None and lo <= ref <= hi
            clip = f" ({n_clipped} clipped point(s) excluded)" if n_clipped else ""
            results.append(SphereResult(i, sph.name, None, None, None, 0, ref, measurable, sph.scored, None,
                                        Verdict.NOT_MEASURED, centre, y.tolist(), error=str(exc),
                                        reason=f"fit failed: {exc}{clip}", n_clipped=n_clipped))  # fmt: skip
            continue
        model = rf.model
        measurable = ref is not None and lo <= ref <= hi
        bias = None if ref is None else relative_bias(np.array([rf.value]), ref)
        verdict, reason = Verdict.RECORDED, ""
        if not sph.scored:
            reason = "not scored (the bath)"
        elif ref is None:
            reason = "no reference value"
        elif not measurable:
            reason = f"reference {ref:g} ms outside the measurable range {lo:g}-{hi:g} ms"
        else:
            verdict = Verdict.PASS if bias is not None and abs(bias) <= EMA_PERCENT else Verdict.FAIL
        if n_clipped:
            reason = "; ".join(
                r for r in (reason, f"{n_clipped} clipped point(s) excluded from the fit") if r
            )
        results.append(SphereResult(i, sph.name, rf.value, rf.se, rf.residual_rms, rf.n_points, ref, measurable,
                                    sph.scored, bias, verdict, centre, y.tolist(), dict(rf.params),
                                    reason=reason, n_clipped=n_clipped))  # fmt: skip
    return PlateResult(param, array.plate, stack, fit, results, reference, (lo, hi), model, sigma,
                       array.roi_radius_mm, notes)  # fmt: skip


def _fit(
    param: str, stack: RelaxStack, y: np.ndarray, tr: np.ndarray | None, t1_model: str, sigma: float | None,
    exclude_first: bool, floor_snr: float, use: np.ndarray,
) -> RelaxFit:  # fmt: skip
    """T1: the separable global fit. T2: the Rician-floor fit started from the global grid fit of the plain
    exponential (never from the reference, so the reference cannot pull the value). `use`: the points fitted
    (clipped ones left out)."""
    if int(use.sum()) < 3:
        raise QckitInputError(f"{int((~use).sum())} of {len(use)} points clipped: too few left to fit")
    if param == "T1":  # global in T1 (separable fit), no seeding needed
        trs = tr[use] if tr is not None else None
        return fit_t1(stack.times[use], y[use], tr=trs, signed=stack.signed, model=t1_model, sigma=sigma)
    start = float(
        grid_fit("T2", stack.times[use], y[None, use], exclude_first=exclude_first and bool(use[0]))[0]
    )
    return fit_t2(stack.times, y, sigma=sigma, exclude_first=exclude_first, floor_snr=floor_snr,
                  t2_guess=start if start > 0 else None, use=use)  # fmt: skip


PLAUSIBLE_PERCENT = 25.0  # a plate whose median |bias| is within this is taken without trying the others


def plate_reference(stack: RelaxStack, array: SphereArray) -> ReferenceSet | None:
    """The array's reference set for the stack's parameter and field strength (1.5 T when the header has none,
    as hazen does; the plate result then notes it)."""
    return array.reference(stack.kind, stack.field_strength_t or 1.5)


def identify_plate(
    stack: RelaxStack, arrays: list[SphereArray], *, prefer: int | None = None, t1_model: str = "3p"
) -> tuple[int, dict[int, float]]:
    """Which plate a stack shows: the one whose references its fitted values match best (median |bias| over
    scored spheres with a reference, %), scored on quick grid fits of the ROI means (`fit.grid_fit`; the means
    stay cached on the stack for `measure_plate`). `prefer` is tried first and taken when plausible (median |bias|
    <= `PLAUSIBLE_PERCENT`); else every plate is scored. Returns the plate and each scored plate's median |bias|."""
    stack.check()
    scores: dict[int, float] = {}
    errors = []
    for arr in sorted(arrays, key=lambda a: a.plate != prefer):
        ref = plate_reference(stack, arr)
        if ref is None:
            continue
        try:
            _, means = located_means(stack, arr)
        except QckitInputError as exc:
            errors.append(str(exc))
            continue
        quick = grid_fit(
            stack.kind, stack.times, means, trs=stack.trs, signed=stack.signed, t1_model=t1_model
        )
        ratios = [abs(np.log(v / r)) for v, r, s in zip(quick, ref.values_ms, arr.spheres, strict=True)
                  if s.scored and v > 0 and r]  # fmt: skip
        if ratios:
            scores[arr.plate] = float(100 * np.expm1(np.median(ratios)))
            if arr.plate == prefer and scores[arr.plate] <= PLAUSIBLE_PERCENT:
                break
    if not scores:
        why = f": {errors[0]}" if errors else ""
        raise QckitInputError(f"{stack.label}: no sphere array of the phantom could be fitted{why}")
    return min(scores, key=lambda p: scores[p]), scores


WRONG_PLATE_MARGIN = 3.0  # an asked plate's median |bias| must not exceed the best plate's by this factor


def measure_stack(
    stack: RelaxStack,
    arrays: list[SphereArray],
    *,
    plate: int | None = None,
    measurable_ms: tuple[float, float] | None = None,
    t1_model: str = "3p",
    floor_snr: float = 2.0,
    t1_rician: bool = False,
) -> PlateResult:
    """The one relaxometry route (`qc run`'s relaxometry analyses and `qckit phantom relaxometry` alike): tell
    the stack's plate among `arrays` by its fitted values (`identify_plate`), or check the asked `plate` against
    them (refused as the wrong plate when its median |bias| exceeds the best plate's by `WRONG_PLATE_MARGIN`),
    then measure it on that plate (`measure_plate`) with its reference set."""
    best, scores = identify_plate(stack, arrays, prefer=plate, t1_model=t1_model)
    chosen = best
    if plate is not None:
        if plate not in scores:
            raise QckitInputError(f"{stack.label}: plate {plate}'s spheres could not be fitted")
        if best != plate and scores[plate] > WRONG_PLATE_MARGIN * max(scores[best], 1.0):
            raise QckitInputError(
                f"{stack.label}: wrong plate: the values match plate {best} (median |bias| {scores[best]:.0f} %), "
                f"not plate {plate} ({scores[plate]:.0f} %)"
            )
        chosen = plate
    arr = next(a for a in arrays if a.plate == chosen)
    return measure_plate(stack, arr, reference=plate_reference(stack, arr), measurable_ms=measurable_ms,
                         t1_model=t1_model, floor_snr=floor_snr, t1_rician=t1_rician)  # fmt: skip
