"""T1 from inversion recovery and T2 from multi-echo spin echo: signal models and their least-squares fits.

Pure functions (no images, no phantom): per ROI, a vector of times and mean signals in, the relaxation time with
its standard error out. The phantom analyses (ISMRM/NIST system phantom, plates 4 and 5) build on them.

T1, inversion-recovery spin echo (Bydder & Young 1985; with incomplete recovery, Barral et al. 2010, Magn Reson
Med 64:1057-1067, eq. 1):

    S(TI) = S0 * (1 - k * exp(-TI / T1) + exp(-TR / T1))        k = 2: ideal 180-degree inversion

`model="2p"` fits (S0, T1) with k = 2; `model="3p"` also fits the inversion efficiency k (Barral's
three-parameter model, robust to imperfect inversion). TR may differ per TI (scanners lengthen TR for long TIs);
`tr=None` drops the TR term (full recovery). Signed (real) images are fitted as they are. Magnitude images lose
the sign before the null: the polarity is restored by trying every split point (the points before it negated) and
keeping the fit with the least residual (Barral's reduced-dimension polarity restoration, NLS-PR). Near the null a
magnitude ROI mean is biased upwards by the Rician floor; given the per-voxel noise SD (`sigma`), the magnitude
model is the Rician expectation of |S(TI)| (below), which needs no polarity restoration and stays unbiased there.

T2, multi-echo spin echo (mono-exponential) with a Rician noise floor (Gudbjartsson & Patz 1995, Magn Reson Med
34:910-914; used for T2 fitting by Raya et al. 2010, Magn Reson Med 63:181-193):

    A(TE) = S0 * exp(-TE / T2)
    E[M(TE)] = sigma * sqrt(pi / 2) * L_{1/2}(-A^2 / (2 sigma^2))
    L_{1/2}(x) = exp(x / 2) * ((1 - x) * I0(-x / 2) - x * I1(-x / 2))

The first echo is excluded by default (stimulated echoes make it fall off the exponential); echoes whose signal is
below `floor_snr` x sigma are ignored (they carry only noise). `sigma=None` fits without the floor (plain
exponential).

Standard errors come from the Jacobian at the solution: cov = s^2 (J^T J)^-1, s^2 = RSS / (n - p).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.special import i0e, i1e

from qckit.core.errors import QckitInputError


class _Optimize:
    """scipy.optimize, imported on first use (it costs every `qckit qc run` 0.25 s of start-up otherwise: the
    registry imports this module to register the relaxometry analysis)."""

    def __getattr__(self, name: str) -> Any:
        from scipy import optimize as _optimize

        return getattr(_optimize, name)


optimize = _Optimize()


@dataclass(frozen=True)
class RelaxFit:
    """One ROI's fit: `value` (T1 or T2, ms), its standard error, the RMS residual, the points used."""

    value: float
    se: float
    residual_rms: float
    n_points: int
    params: dict[str, float] = field(default_factory=dict)
    model: str = ""

    def to_dict(self) -> dict[str, object]:
        """The fit as plain data: value, standard error, model, parameters and residual."""
        return {"value": self.value, "se": self.se, "residual_rms": self.residual_rms, "n_points": self.n_points,
                "params": dict(self.params), "model": self.model}  # fmt: skip


def ir_signal(
    ti: np.ndarray, s0: float, t1: float, k: float = 2.0, tr: np.ndarray | float | None = None
) -> np.ndarray:
    """Inversion-recovery signal (module docstring), signed."""
    ti = np.asarray(ti, float)
    recovery = 0.0 if tr is None else np.exp(-np.asarray(tr, float) / t1)
    return s0 * (1.0 - k * np.exp(-ti / t1) + recovery)


def rician_mean(a: np.ndarray, sigma: float) -> np.ndarray:
    """Expected magnitude of a Rician variable with underlying amplitude `a` and noise SD `sigma`."""
    a = np.abs(np.asarray(a, float))
    if sigma <= 0:
        return a
    x = -(a**2) / (2.0 * sigma**2)
    # exp(x/2) I_n(-x/2) = i_ne(-x/2) (exponentially scaled Bessel functions keep this finite at high SNR)
    lag = (1.0 - x) * i0e(-x / 2.0) - x * i1e(-x / 2.0)
    return sigma * np.sqrt(np.pi / 2.0) * lag


def _se(res: Any, n: int, index: int) -> float:
    p = len(res.x)
    if n <= p:
        return float("nan")
    s2 = float(np.sum(res.fun**2)) / (n - p)
    try:
        cov = np.linalg.inv(res.jac.T @ res.jac) * s2
    except np.linalg.LinAlgError:
        return float("nan")
    return float(np.sqrt(max(cov[index, index], 0.0)))


def _check(times: np.ndarray, signal: np.ndarray, what: str, minimum: int) -> None:
    if times.shape != signal.shape or times.ndim != 1:
        raise QckitInputError(f"{what}: times and signals must be two vectors of one length")
    if len(np.unique(times)) < minimum:
        raise QckitInputError(f"{what}: needs at least {minimum} distinct times, got {len(np.unique(times))}")
    if not (np.isfinite(times).all() and np.isfinite(signal).all()):
        raise QckitInputError(f"{what}: non-finite times or signals")


def fit_t1(
    ti: np.ndarray,
    signal: np.ndarray,
    *,
    tr: np.ndarray | float | None = None,
    signed: bool = False,
    model: str = "2p",
    t1_guess: float | None = None,
    sigma: float | None = None,
) -> RelaxFit:
    """T1 (ms) from inversion times `ti` (ms) and mean signals (module docstring); `sigma`: the per-voxel noise
    SD of magnitude images (the Rician model near the null).

    Without `sigma` the fit is separable (variable projection, Golub & Pereyra 1973, SIAM J Numer Anal
    10:413-432): for a given T1 the model is linear in S0 (2p) or in (S0, S0 k) (3p), so the residual is
    minimised over T1 alone, globally on a log grid (1 ms .. 20 s) and then by a bounded Brent search, for every
    polarity split at once, so no start value is needed (`t1_guess` is accepted and ignored)."""
    ti, y = np.asarray(ti, float), np.asarray(signal, float)
    if model not in ("2p", "3p"):
        raise QckitInputError(f"T1 model must be '2p' or '3p', not {model!r}")
    _check(ti, y, "T1 fit", 3 if model == "2p" else 4)
    order = np.argsort(ti)
    ti, y = ti[order], y[order]
    trv: np.ndarray | None = None  # TR per TI, in the sorted order
    if tr is not None:
        trv = np.broadcast_to(np.asarray(tr, float), ti.shape)[order] if np.ndim(tr) else np.full(ti.shape,
                                                                                                float(tr))  # fmt: skip
    rician = sigma is not None and sigma > 0 and not signed
    if rician:  # started from the polarity-restored separable fit
        start = fit_t1(ti, y, tr=trv, signed=False, model=model)
        return _fit_t1_rician(ti, y, trv, model, start.params, float(sigma))  # type: ignore[arg-type]
    n = len(y)
    if signed:
        ys = y[None, :]
    else:  # polarity restoration: the points before the null are negative
        ys = np.stack([np.concatenate([-np.abs(y[:k]), np.abs(y[k:])]) for k in range(n + 1)])
    grid = np.geomspace(1.0, 20000.0, 400)
    with np.errstate(over="ignore", invalid="ignore"):
        rss = _ir_rss(ti, trv, ys, grid, model)  # grid x splits
    g, split = np.unravel_index(int(np.argmin(rss)), rss.shape)
    yy = ys[split]
    lo, hi = np.log(grid[max(g - 1, 0)]), np.log(grid[min(g + 1, len(grid) - 1)])
    best = optimize.minimize_scalar(lambda lt: float(_ir_rss(ti, trv, yy[None, :], np.exp([lt]), model)[0, 0]),
                                    bounds=(lo, hi), method="bounded", options={"xatol": 1e-6})  # fmt: skip
    t1 = float(np.exp(best.x))
    coef = _ir_coef(ti, trv, yy, t1, model)
    s0, k = float(coef[0]), float(coef[1] / coef[0]) if model == "3p" and coef[0] != 0 else 2.0
    pred = ir_signal(ti, s0, t1, k, trv)
    resid = pred - yy
    rec = 0.0 if trv is None else np.exp(-trv / t1)
    e = np.exp(-ti / t1)
    jac = [1.0 - k * e + rec, s0 * (k * e * (-ti) + rec * (0.0 if trv is None else trv)) / t1**2]
    if model == "3p":
        jac.append(-s0 * e)
    se = _se(optimize.OptimizeResult(x=np.zeros(len(jac)), fun=resid, jac=np.column_stack(jac)), n, 1)
    params = {"s0": s0, "t1": t1} | ({"k": k} if model == "3p" else {})
    how = ", signed" if signed else ", magnitude with polarity restoration"
    return RelaxFit(t1, se, float(np.sqrt(np.mean(resid**2))), n, params, f"IR {model}{how}")


def _ir_columns(ti: np.ndarray, trv: np.ndarray | None, t1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two basis functions of the IR model per T1 (rows): 1 + exp(-TR/T1) and -exp(-TI/T1)."""
    t1 = np.asarray(t1, float)[:, None]
    # without TR (full recovery assumed) the first column is 1 for every T1: an array, so the 3p sums work
    rec = np.zeros((t1.shape[0], ti.size)) if trv is None else np.exp(-trv[None, :] / t1)
    return 1.0 + rec, -np.exp(-ti[None, :] / t1)


K_BOUNDS = (1.0, 2.5)  # inversion efficiency: 1 = saturation only, 2 = perfect inversion


def _ir_rss(ti: np.ndarray, trv: np.ndarray | None, ys: np.ndarray, t1: np.ndarray, model: str) -> np.ndarray:
    """Residual sum of squares (T1 values x data rows) with the linear parameters solved exactly; for 3p the
    inversion efficiency k = (S0 k) / S0 is held in `K_BOUNDS` (outside it the optimum lies on a bound, where the
    model is linear in S0 alone). Without the bound a very short T1 trades against a huge k."""
    u, v = _ir_columns(ti, trv, t1)
    yy = (ys**2).sum(1)[None, :]

    def one_param(k: float) -> np.ndarray:
        c = u + k * v  # 1 - k exp(-TI/T1) + exp(-TR/T1)
        return yy - (c @ ys.T) ** 2 / (c**2).sum(1)[:, None]

    if model == "2p":
        return one_param(2.0)
    uu, vv, uv = (u**2).sum(1)[:, None], (v**2).sum(1)[:, None], (u * v).sum(1)[:, None]
    uy, vy = u @ ys.T, v @ ys.T
    det = uu * vv - uv**2
    with np.errstate(divide="ignore", invalid="ignore"):
        a = (vv * uy - uv * vy) / det
        b = (uu * vy - uv * uy) / det
        k = b / a
        free = yy - (a * uy + b * vy)
    inside = np.isfinite(free) & (k >= K_BOUNDS[0]) & (k <= K_BOUNDS[1])
    bound = np.minimum(one_param(K_BOUNDS[0]), one_param(K_BOUNDS[1]))
    return np.where(inside, free, bound)


def _ir_coef(ti: np.ndarray, trv: np.ndarray | None, y: np.ndarray, t1: float, model: str) -> np.ndarray:
    """(S0, S0 k) at `t1`, with k held in `K_BOUNDS` for 3p (as `_ir_rss`)."""
    u, v = (np.broadcast_to(c, (1, len(ti)))[0] for c in _ir_columns(ti, trv, np.array([t1])))

    def on(k: float) -> tuple[np.ndarray, float]:
        c = u + k * v
        s0 = float(c @ y / (c @ c))
        return np.array([s0, k * s0]), float(np.sum((s0 * c - y) ** 2))

    if model == "2p":
        return on(2.0)[0]
    coef = np.linalg.lstsq(np.column_stack([u, v]), y, rcond=None)[0]
    if coef[0] != 0 and K_BOUNDS[0] <= coef[1] / coef[0] <= K_BOUNDS[1]:
        return coef
    return min((on(K_BOUNDS[0]), on(K_BOUNDS[1])), key=lambda c: c[1])[0]


def _fit_t1_rician(
    ti: np.ndarray, y: np.ndarray, trv: np.ndarray | None, model: str, start: dict[str, float], sigma: float
) -> RelaxFit:
    """Magnitude IR fitted as the Rician expectation of |S(TI)| (bounded least squares from `start`)."""
    guess, s0_guess = start["t1"], abs(start["s0"]) or 1.0

    def resid(p: np.ndarray) -> np.ndarray:
        k = p[2] if model == "3p" else 2.0
        return rician_mean(ir_signal(ti, p[0], p[1], k, trv), sigma) - y

    x0 = [s0_guess, guess] + ([float(np.clip(start.get("k", 2.0), *K_BOUNDS))] if model == "3p" else [])
    lo = [0.0, 1e-3] + ([K_BOUNDS[0]] if model == "3p" else [])
    hi = [np.inf, 1e6] + ([K_BOUNDS[1]] if model == "3p" else [])
    best = optimize.least_squares(resid, x0, bounds=(lo, hi), x_scale="jac", max_nfev=2000)
    n = len(y)
    params = {"s0": float(best.x[0]), "t1": float(best.x[1])} | (
        {"k": float(best.x[2])} if model == "3p" else {}
    )
    return RelaxFit(float(best.x[1]), _se(best, n, 1), float(np.sqrt(np.mean(best.fun**2))), n, params,
                    f"IR {model}, magnitude, Rician model")  # fmt: skip


def fit_t2(
    te: np.ndarray,
    signal: np.ndarray,
    *,
    sigma: float | None = None,
    exclude_first: bool = True,
    floor_snr: float = 1.0,
    t2_guess: float | None = None,
    use: np.ndarray | None = None,
) -> RelaxFit:
    """T2 (ms) from echo times `te` (ms) and mean magnitude signals (module docstring); `use` (per echo, in the
    given order) leaves out points that cannot be trusted (clipped), after the first echo's exclusion."""
    te, y = np.asarray(te, float), np.asarray(signal, float)
    _check(te, y, "T2 fit", 3)
    order = np.argsort(te)
    te, y = te[order], y[order]
    keep = np.ones(len(te), bool)
    if exclude_first:
        keep[0] = False
    if use is not None:
        keep &= np.asarray(use, bool)[order]
    if sigma is not None and sigma > 0:
        keep &= y > floor_snr * sigma
    if keep.sum() < 2:
        raise QckitInputError(
            f"T2 fit: {int(keep.sum())} echo(es) above the noise floor; at least 2 are needed"
        )
    t, yy = te[keep], y[keep]
    guess = t2_guess or max(float(np.ptp(t)), 1.0)

    def resid(p: np.ndarray) -> np.ndarray:
        a = p[0] * np.exp(-t / p[1])
        return (rician_mean(a, sigma) if sigma else a) - yy

    s0_guess = float(yy[0] * np.exp(t[0] / guess))
    res = optimize.least_squares(resid, [s0_guess, guess], bounds=([0.0, 1e-3], [np.inf, 1e6]), x_scale="jac",
                                 max_nfev=2000)  # fmt: skip
    return RelaxFit(float(res.x[1]), _se(res, len(t), 1), float(np.sqrt(np.mean(res.fun**2))), int(len(t)),
                    {"s0": float(res.x[0]), "t2": float(res.x[1]), "sigma": float(sigma or 0.0)},
                    "mono-exponential" + (" with Rician noise floor" if sigma else ""))  # fmt: skip


GRID = np.geomspace(1.0, 20000.0, 400)  # 1 ms .. 20 s, 1.3 % apart

# Fit quality (a fit that fails one is "not measured", never judged against the reference):
MAX_RELATIVE_SE = 0.5  # the standard error may not exceed half the value
MAX_RELATIVE_RESIDUAL = 0.1  # the RMS residual may not exceed 10 % of the largest signal fitted
BOUNDS_MS = {
    "T1": (1.0, 20000.0),
    "T2": (1e-3, 1e6),
}  # the fits' search ranges: a value on them is no optimum


# a T1/T2 below 1/10 of the shortest sampled time cannot be told (the curve is flat from the first point); long
# values are left to the standard-error rule (a slow decay sampled early is still determined, if imprecisely)
IDENTIFIABLE = (0.1, float("inf"))


def fit_failure(param: str, fit: RelaxFit, signal: np.ndarray, times: np.ndarray | None = None) -> str:
    """Why a fit cannot be taken as a measurement ("" when it can): its value on the search range's bound (2 %)
    or below what the sampled times can determine (under 1/10 of the shortest TI/TE: the curve is flat from the
    first point, e.g. a "recovery" already complete at the first TI), a standard error over
    `MAX_RELATIVE_SE` of the value (or not finite), or an RMS residual over `MAX_RELATIVE_RESIDUAL` of the
    largest |signal| (the model does not describe the recovery or decay curve). After the usual non-linear
    least-squares diagnostics (Bates & Watts 1988, Nonlinear Regression Analysis, ch. 2-3: parameter standard
    errors from the Jacobian, residual size against the signal)."""
    lo, hi = BOUNDS_MS[param]
    v = fit.value
    if not np.isfinite(v) or v >= 0.98 * hi or v <= 1.02 * lo:
        return f"the fitted {param} {v:.4g} ms lies on the search bound ({lo:g}-{hi:g} ms)"
    if times is not None and np.size(times):
        t_lo, t_hi = IDENTIFIABLE[0] * float(np.min(times)), IDENTIFIABLE[1] * float(np.max(times))
        if not t_lo <= v <= t_hi:
            return (f"the fitted {param} {v:.4g} ms is outside what the sampled times "
                    f"({float(np.min(times)):g}-{float(np.max(times)):g} ms) can determine ({t_lo:.3g}-{t_hi:.4g} ms)")  # fmt: skip
    if not np.isfinite(fit.se) or fit.se > MAX_RELATIVE_SE * abs(v):
        return (
            f"the standard error {fit.se:.3g} ms exceeds {100 * MAX_RELATIVE_SE:g} % of the value {v:.4g} ms"
        )
    top = float(np.max(np.abs(signal))) if np.size(signal) else 0.0
    if top > 0 and fit.residual_rms > MAX_RELATIVE_RESIDUAL * top:
        return (f"the RMS residual {fit.residual_rms:.3g} exceeds {100 * MAX_RELATIVE_RESIDUAL:g} % of the largest "
                f"signal {top:.4g}: the model does not describe the curve")  # fmt: skip
    return ""


def _refine_grid(rss: np.ndarray) -> np.ndarray:
    """Parabolic refinement (log scale) of each column's minimum over `GRID`; 0 at the grid's ends."""
    k = np.argmin(rss, axis=0)
    out = np.zeros(rss.shape[1])
    idx = np.flatnonzero((k > 0) & (k < len(GRID) - 1))
    if idx.size:
        a, b, c = rss[k[idx] - 1, idx], rss[k[idx], idx], rss[k[idx] + 1, idx]
        denom = a - 2 * b + c
        with np.errstate(divide="ignore", invalid="ignore"):
            off = np.where(denom > 0, 0.5 * (a - c) / denom, 0.0)
        out[idx] = GRID[k[idx]] * np.exp(np.clip(off, -0.5, 0.5) * np.log(GRID[1] / GRID[0]))
    return out


def grid_fit(
    kind: str, times: np.ndarray, y: np.ndarray, *, trs: np.ndarray | None = None, signed: bool = False,
    t1_model: str = "3p", exclude_first: bool = True, chunk: int = 4096,
) -> np.ndarray:  # fmt: skip
    """T1 or T2 (ms) of many signals at once (`y`: signals x times), by the separable models above minimised on
    `GRID` with a parabolic refinement: for maps and quick plate scoring (no standard errors, no Rician floor).
    Magnitude IR tries every polarity split per signal."""
    order = np.argsort(times)
    t, y = np.asarray(times, float)[order], np.asarray(y, float)[:, order]
    out = np.zeros(len(y))
    if kind == "T1":
        trv = None if trs is None or not np.all(np.isfinite(trs)) else np.asarray(trs, float)[order]
        for a in range(0, len(y), chunk):
            yc = y[a : a + chunk]
            with np.errstate(over="ignore", invalid="ignore"):
                if signed:
                    rss = _ir_rss(t, trv, yc, GRID, t1_model)
                else:
                    rss = np.full((len(GRID), len(yc)), np.inf)
                    for k in range(len(t) + 1):
                        ys = np.abs(yc)
                        ys[:, :k] *= -1
                        rss = np.minimum(rss, _ir_rss(t, trv, ys, GRID, t1_model))
            out[a : a + chunk] = _refine_grid(rss)
        return out
    if exclude_first and len(t) > 3:
        t, y = t[1:], y[:, 1:]
    e = np.exp(-t[None, :] / GRID[:, None])
    ee = (e**2).sum(1)[:, None]
    for a in range(0, len(y), chunk):
        yc = np.abs(y[a : a + chunk])
        out[a : a + chunk] = _refine_grid((yc**2).sum(1)[None, :] - (e @ yc.T) ** 2 / ee)
    return out
