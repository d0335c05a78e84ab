"""Percent signal ghosting (PSG), ACR method.

ACR large phantom test guidance (2018), section 7: on slice 7, the mean signal in a large ROI inside the phantom
(the uniformity ROI) and in four elliptical ROIs of ~10 cm^2 with a 4:1 axis ratio in the background, above, below,
left and right of the phantom, long axes along the phantom edge;

    PSG = 100 * |((top + bottom) - (left + right)) / (2 * large)|

Action limit (in `phantoms/acr-mri-large.yaml`): PSG <= 2.5% (ACR; AAPM TG-284, Jafari-Khouzani et al. 2022,
table 3).

Each ellipse is centred half-way between the phantom edge and the edge of the field of view, on the phantom's
centre line; where the gap is too narrow for the short axis plus a 5 pixel margin on both sides, the ellipse is
narrowed and lengthened by the same factor (area kept), as in the guidance's "make them as large as fits".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from qckit.analyses.base import Analysis, AnalysisContext, AnalysisOutput
from qckit.analyses.registry import register
from qckit.core.results import ellipse
from qckit.phantoms.localize import body_mask


@dataclass(frozen=True)
class GhostingResult:
    """PSG on one slice: the value (percent), the large ROI's mean and the four background ellipses' means."""

    psg: float  # percent
    large: float
    top: float
    bottom: float
    left: float
    right: float
    masks: dict[str, np.ndarray]
    ellipses: dict[str, tuple[tuple[float, float], float, float]]  # name -> ((x, y) centre, semi-x, semi-y)


def _ellipse(shape, centre_xy, half_x, half_y) -> np.ndarray:  # noqa: ANN001
    yy, xx = np.indices(shape)
    return ((xx - centre_xy[0]) / half_x) ** 2 + ((yy - centre_xy[1]) / half_y) ** 2 <= 1.0


def percent_signal_ghosting(
    image: np.ndarray,
    centre_px: tuple[float, float],
    pixel_mm: float,
    *,
    large_radius_mm: float = 80.0,
    ellipse_area_mm2: float = 1000.0,
    margin_px: float = 5.0,
) -> GhostingResult:
    """Percent signal ghosting of one slice, ACR method:
    PSG = 100 * |((top + bottom) - (left + right)) / (2 * large)|, with the ROI placement of the module docstring
    (ACR large phantom test guidance 2018, section 7).
    """
    img = np.asarray(image, dtype=float)
    h, w = img.shape
    mask = body_mask(img)
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    top_edge, bottom_edge, left_edge, right_edge = rows[0], rows[-1], cols[0], cols[-1]
    short = math.sqrt(ellipse_area_mm2 / (4 * math.pi)) / pixel_mm  # semi-axes b and 4b: pi * b * 4b = area
    cx, cy = centre_px

    def fit(gap: float) -> tuple[float, float]:
        """(semi short, semi long) of an ellipse fitting a gap of `gap` pixels, area kept."""
        room = gap / 2 - margin_px
        if room <= 0:
            raise ValueError("no background between the phantom and the field of view for the ghosting ROIs")
        b = min(short, room)
        return b, short * 4 * short / b

    ellipses: dict[str, tuple[tuple[float, float], float, float]] = {}
    b, a = fit(top_edge)
    ellipses["top"] = ((cx, top_edge / 2), a, b)
    b, a = fit(h - 1 - bottom_edge)
    ellipses["bottom"] = ((cx, (bottom_edge + h - 1) / 2), a, b)
    b, a = fit(left_edge)
    ellipses["left"] = ((left_edge / 2, cy), b, a)
    b, a = fit(w - 1 - right_edge)
    ellipses["right"] = (((right_edge + w - 1) / 2, cy), b, a)
    masks = {k: _ellipse(img.shape, c, ax, ay) for k, (c, ax, ay) in ellipses.items()}
    yy, xx = np.indices(img.shape)
    masks["large"] = np.hypot(xx - cx, yy - cy) <= large_radius_mm / pixel_mm
    m = {k: float(img[v].mean()) for k, v in masks.items()}
    psg = 100.0 * abs(((m["top"] + m["bottom"]) - (m["left"] + m["right"])) / (2 * m["large"]))
    return GhostingResult(psg, m["large"], m["top"], m["bottom"], m["left"], m["right"], masks, ellipses)


@register
class PercentSignalGhosting(Analysis):
    """ACR PSG on the uniform slice (`slice`)."""

    name = "psg"
    title = "Percent signal ghosting"

    def run(self, ctx: AnalysisContext) -> AnalysisOutput:
        """Measure PSG on the definition's slice of the context's series."""
        v, n, img, o = ctx.on_slice()
        g = percent_signal_ghosting(img, o.centre_px, v.pixel_mm[0],
                                    large_radius_mm=ctx.param("large_radius_mm", 80.0),
                                    ellipse_area_mm2=ctx.param("ellipse_area_mm2", 1000.0))  # fmt: skip
        m = ctx.measurement("psg", g.psg, "%", "ACR percent signal ghosting (four 10 cm^2 background ellipses)",
                            limit=ctx.limit(), slice_no=n,
                            detail={k: getattr(g, k) for k in ("large", "top", "bottom", "left", "right")})  # fmt: skip
        ctx.draw([ellipse(c, ax, ay, f"ghost {k}") for k, (c, ax, ay) in g.ellipses.items()], slice_no=n)
        return AnalysisOutput([m])
