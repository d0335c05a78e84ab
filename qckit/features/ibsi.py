"""Compare pyradiomics features with IBSI reference values (Zwanenburg et al. 2020, Radiology 295:328; IBSI
reference manual v11), e.g. for the IBSI-1 digital phantom.

Settings that match IBSI's configuration for the digital phantom (no resampling, no re-segmentation, 3D,
discretization with bin width 1 on its integer grey levels): `IBSI_DIGITAL_PHANTOM_PARAMS`. IBSI "3D, averaged"
co-occurrence and run-length features correspond to pyradiomics' per-direction-averaged GLCM/GLRLM; GLSZM, NGTDM
and GLDM (IBSI NGLDM with alpha = 0) are 3D. Mapping notes:
- IBSI reports excess kurtosis; pyradiomics' Kurtosis is not excess: IBSI = pyradiomics - 3;
- IBSI dissimilarity equals pyradiomics DifferenceAverage; IBSI sum variance equals ClusterTendency;
- IBSI joint variance is pyradiomics SumSquares; angular second moment is JointEnergy.
A value passes when |value - reference| <= max(IBSI tolerance, half a unit of the reference's third
significant digit) - references are published to three significant digits.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import pandas as pd

from qckit.core.files import open_regular

IBSI_DIGITAL_PHANTOM_PARAMS: dict[str, Any] = {
    "setting": {
        "binWidth": 1,
        "label": 1,
        "resampledPixelSpacing": None,
        "force2D": False,
        "distances": [1],
        "gldm_a": 0,
        "voxelArrayShift": 0,
    },
    "imageType": {"Original": {}},
    "featureClass": {
        "firstorder": [],
        "shape": [],
        "glcm": [],
        "glrlm": [],
        "glszm": [],
        "gldm": [],
        "ngtdm": [],
    },
}

_FIRSTORDER = {
    "mean": "Mean",
    "var": "Variance",
    "skew": "Skewness",
    "kurt": "Kurtosis",
    "median": "Median",
    "min": "Minimum",
    "p10": "10Percentile",
    "p90": "90Percentile",
    "max": "Maximum",
    "iqr": "InterquartileRange",
    "range": "Range",
    "mad": "MeanAbsoluteDeviation",
    "rmad": "RobustMeanAbsoluteDeviation",
    "energy": "Energy",
    "rms": "RootMeanSquared",
}
_SHAPE = {
    "volume": "MeshVolume",
    "vol_approx": "VoxelVolume",
    "area_mesh": "SurfaceArea",
    "av": "SurfaceVolumeRatio",
    "sphericity": "Sphericity",
    "diam": "Maximum3DDiameter",
    "pca_maj_axis": "MajorAxisLength",
    "pca_min_axis": "MinorAxisLength",
    "pca_least_axis": "LeastAxisLength",
    "pca_elongation": "Elongation",
    "pca_flatness": "Flatness",
}
_GLCM = {
    "joint_max": "MaximumProbability",
    "joint_avg": "JointAverage",
    "joint_var": "SumSquares",
    "joint_entr": "JointEntropy",
    "diff_avg": "DifferenceAverage",
    "diff_var": "DifferenceVariance",
    "diff_entr": "DifferenceEntropy",
    "sum_avg": "SumAverage",
    "sum_var": "ClusterTendency",
    "sum_entr": "SumEntropy",
    "energy": "JointEnergy",
    "contrast": "Contrast",
    "dissimilarity": "DifferenceAverage",
    "inv_diff": "Id",
    "inv_diff_norm": "Idn",
    "inv_diff_mom": "Idm",
    "inv_diff_mom_norm": "Idmn",
    "inv_var": "InverseVariance",
    "corr": "Correlation",
    "auto_corr": "Autocorrelation",
    "clust_tend": "ClusterTendency",
    "clust_shade": "ClusterShade",
    "clust_prom": "ClusterProminence",
    "info_corr1": "Imc1",
    "info_corr2": "Imc2",
}
_GLRLM = {
    "sre": "ShortRunEmphasis",
    "lre": "LongRunEmphasis",
    "lgre": "LowGrayLevelRunEmphasis",
    "hgre": "HighGrayLevelRunEmphasis",
    "srlge": "ShortRunLowGrayLevelEmphasis",
    "srhge": "ShortRunHighGrayLevelEmphasis",
    "lrlge": "LongRunLowGrayLevelEmphasis",
    "lrhge": "LongRunHighGrayLevelEmphasis",
    "glnu": "GrayLevelNonUniformity",
    "glnu_norm": "GrayLevelNonUniformityNormalized",
    "rlnu": "RunLengthNonUniformity",
    "rlnu_norm": "RunLengthNonUniformityNormalized",
    "r_perc": "RunPercentage",
    "gl_var": "GrayLevelVariance",
    "rl_var": "RunVariance",
    "rl_entr": "RunEntropy",
}
_GLSZM = {
    "sze": "SmallAreaEmphasis",
    "lze": "LargeAreaEmphasis",
    "lgze": "LowGrayLevelZoneEmphasis",
    "hgze": "HighGrayLevelZoneEmphasis",
    "szlge": "SmallAreaLowGrayLevelEmphasis",
    "szhge": "SmallAreaHighGrayLevelEmphasis",
    "lzlge": "LargeAreaLowGrayLevelEmphasis",
    "lzhge": "LargeAreaHighGrayLevelEmphasis",
    "glnu": "GrayLevelNonUniformity",
    "glnu_norm": "GrayLevelNonUniformityNormalized",
    "zsnu": "SizeZoneNonUniformity",
    "zsnu_norm": "SizeZoneNonUniformityNormalized",
    "z_perc": "ZonePercentage",
    "gl_var": "GrayLevelVariance",
    "zs_var": "ZoneVariance",
    "zs_entr": "ZoneEntropy",
}
_GLDM = {
    "lde": "SmallDependenceEmphasis",
    "hde": "LargeDependenceEmphasis",
    "lgce": "LowGrayLevelEmphasis",
    "hgce": "HighGrayLevelEmphasis",
    "ldlge": "SmallDependenceLowGrayLevelEmphasis",
    "ldhge": "SmallDependenceHighGrayLevelEmphasis",
    "hdlge": "LargeDependenceLowGrayLevelEmphasis",
    "hdhge": "LargeDependenceHighGrayLevelEmphasis",
    "glnu": "GrayLevelNonUniformity",
    "dcnu": "DependenceNonUniformity",
    "dcnu_norm": "DependenceNonUniformityNormalized",
    "gl_var": "GrayLevelVariance",
    "dc_var": "DependenceVariance",
    "dc_entr": "DependenceEntropy",
}
_NGTDM = {
    "coarseness": "Coarseness",
    "contrast": "Contrast",
    "busyness": "Busyness",
    "complexity": "Complexity",
    "strength": "Strength",
}


def ibsi_to_pyradiomics() -> dict[str, tuple[str, float]]:
    """IBSI tag -> (pyradiomics feature name, additive correction)."""
    out: dict[str, tuple[str, float]] = {}
    for k, v in _FIRSTORDER.items():
        out[f"stat_{k}"] = (f"original_firstorder_{v}", -3.0 if k == "kurt" else 0.0)
    out["ih_entropy"] = ("original_firstorder_Entropy", 0.0)
    out["ih_uniformity"] = ("original_firstorder_Uniformity", 0.0)
    for k, v in _SHAPE.items():
        out[f"morph_{k}"] = (f"original_shape_{v}", 0.0)
    for k, v in _GLCM.items():
        out[f"cm_{k}_3D_avg"] = (f"original_glcm_{v}", 0.0)
    for k, v in _GLRLM.items():
        out[f"rlm_{k}_3D_avg"] = (f"original_glrlm_{v}", 0.0)
    for k, v in _GLSZM.items():
        out[f"szm_{k}_3D"] = (f"original_glszm_{v}", 0.0)
    for k, v in _GLDM.items():
        out[f"ngl_{k}_3D"] = (f"original_gldm_{v}", 0.0)
    for k, v in _NGTDM.items():
        out[f"ngt_{k}_3D"] = (f"original_ngtdm_{v}", 0.0)
    return out


def _rounding(ref: float) -> float:
    if ref == 0:
        return 0.0
    return 0.5 * 10 ** (math.floor(math.log10(abs(ref))) - 2)


def compare_with_ibsi(features: dict[str, float], reference_csv: str | Path) -> pd.DataFrame:
    """One row per mapped IBSI feature: tag, feature, value, reference, difference, tolerance, passed."""
    with open_regular(reference_csv, what="IBSI reference table", encoding="utf-8-sig") as fh:
        refs = {r["tag"]: r for r in csv.DictReader(fh)}
    rows = []
    for tag, (name, shift) in ibsi_to_pyradiomics().items():
        ref_row = refs.get(tag)
        if ref_row is None or not ref_row["reference value"].strip() or name not in features:
            continue
        ref = float(ref_row["reference value"])
        tol = max(float(ref_row["tolerance"] or 0), _rounding(ref))
        value = float(features[name]) + shift
        rows.append(
            {
                "tag": tag,
                "family": ref_row["family"],
                "pyradiomics": name,
                "value": value,
                "reference": ref,
                "difference": value - ref,
                "tolerance": tol,
                "passed": abs(value - ref) <= tol,
            }
        )
    return pd.DataFrame(rows)
