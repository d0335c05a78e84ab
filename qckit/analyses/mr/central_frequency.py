"""Central (resonance) frequency, recorded per session for trending (ACR weekly QC).

The ACR MRI QC manual (2015, technologist's weekly QC) records the centre frequency the scanner found for the
phantom; its action criterion is vendor-specified, e.g. +-500 Hz from the baseline (AAPM TG-284, Jafari-Khouzani et
al. 2022, table 3, ACR column). qckit records ImagingFrequency (0018,0084) of the measured series in MHz, with the
field strength's expected Larmor frequency for reference (gamma/2pi = 42.577 MHz/T), and the QC history charts it
with an action level of +-500 Hz about the baseline centre (`qckit.history.trend.DEFAULT_LEVELS`), also shown in
ppm of the baseline (1 ppm at 1.5 T = 63.9 Hz), next to the statistical control limits.
"""

from __future__ import annotations

from qckit.analyses.base import Analysis, AnalysisContext, AnalysisOutput
from qckit.analyses.registry import register
from qckit.core.values import optional_float

GAMMA_MHZ_PER_T = 42.577478  # proton gyromagnetic ratio / 2 pi (CODATA 2018)


@register
class CentralFrequency(Analysis):
    """The series' ImagingFrequency (MHz), for the QC history."""

    name = "central_frequency"
    title = "Central frequency"

    def run(self, ctx: AnalysisContext) -> AnalysisOutput:
        """Record ImagingFrequency of the context's series; a series without it is an input problem."""
        v = ctx.view()
        f = optional_float(v.volume.header.get("ImagingFrequency"))
        if f is None or f <= 0:
            raise ValueError("the series has no ImagingFrequency (0018,0084): no central frequency to record")
        detail = {}
        if ctx.field_strength_t:
            larmor = GAMMA_MHZ_PER_T * ctx.field_strength_t
            detail = {"larmor_mhz": larmor, "offset_from_larmor_ppm": (f - larmor) / larmor * 1e6}
        m = ctx.measurement("central_frequency_mhz", f, "MHz", "ImagingFrequency (0018,0084) of the series",
                            detail=detail)  # fmt: skip
        return AnalysisOutput([m])
