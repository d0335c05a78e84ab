"""Extract the features of one case: read image and mask, check them, normalize, run pyradiomics.

Runs in worker processes (local pool or Dask): it takes and returns only plain data, and reads its images itself
(no whole-cohort images in memory).
"""

from __future__ import annotations

import functools
import json
import logging
import math
import time
from typing import Any

import numpy as np

from qckit.core.jsonio import dumps
from qckit.features.manifest import Case
from qckit.features.params import ExtractionSettings
from qckit.normalize.image import NormalizationError, read_image

log = logging.getLogger(__name__)


class CaseError(Exception):
    """One case cannot be extracted; the message says why (the run goes on with the others)."""


def _check_geometry(image: Any, mask: Any, case: Case) -> None:
    if image.GetSize() != mask.GetSize():
        raise CaseError(f"mask size {mask.GetSize()} differs from image size {image.GetSize()}")
    for what, a, b in (
        ("spacing", image.GetSpacing(), mask.GetSpacing()),
        ("origin", image.GetOrigin(), mask.GetOrigin()),
        ("direction", image.GetDirection(), mask.GetDirection()),
    ):
        if not np.allclose(a, b, atol=1e-3, rtol=1e-4):
            raise CaseError(
                f"mask {what} {tuple(round(v, 4) for v in b)} differs from image {what} "
                f"{tuple(round(v, 4) for v in a)}"
            )


def _normalize(image: Any, case: Case, settings: ExtractionSettings) -> Any:
    import SimpleITK as sitk

    from qckit.normalize import whitestripe, zscore

    norm = settings.normalization
    if norm.method == "none":
        return image
    norm_mask = None
    if case.norm_mask:
        norm_mask = read_image(case.norm_mask)
        _check_geometry(image, norm_mask, case)
    if norm.method == "zscore":
        out, _ = zscore(image, norm_mask)
    else:
        out, _ = whitestripe(image, norm_mask, contrast=norm.contrast, width=norm.width)
    return sitk.Cast(out, sitk.sitkFloat32)


@functools.lru_cache(maxsize=8)
def _extractor(params_json: str) -> Any:
    """One pyradiomics extractor per parameter set and process (its constructor validates the parameters against
    pyradiomics' schema, 60 ms a case; `execute` works on a copy of the settings, so one extractor serves every
    case). pyradiomics' `diagnostics_*` entries (image and mask hashes, statistics) are not computed unless the
    parameters ask for them (`setting: {additionalInfo: true}`): the table keeps features only."""
    from radiomics import featureextractor

    # pyradiomics sets its logger's level when first imported (here: every extractor is built by this function):
    # its INFO notes and its advice on bin counts are not qckit's warnings
    logging.getLogger("radiomics").setLevel(logging.ERROR)
    params = json.loads(params_json)
    params["setting"] = {"additionalInfo": False, **(params.get("setting") or {})}
    return featureextractor.RadiomicsFeatureExtractor(params)


def extract_case(case: Case, settings: ExtractionSettings) -> dict[str, Any]:
    """{'key', 'row': metadata + features} for one case; raises `CaseError` with the reason."""
    import SimpleITK as sitk

    t0 = time.perf_counter()
    try:
        image = read_image(case.image)
        mask = read_image(case.mask)
    except Exception as exc:
        raise CaseError(str(exc) or type(exc).__name__) from exc
    _check_geometry(image, mask, case)
    voxels = int((sitk.GetArrayViewFromImage(mask) == case.label_value).sum())
    if voxels == 0:
        raise CaseError(f"the mask has no voxel with label {case.label_value}")
    if case.perturbation is not None:
        from qckit.features.perturb import PerturbationError, apply

        try:  # seeded by the subject and region, not the paths: a moved dataset gets the same instances
            image, mask = apply(image, mask, case.label_value, case.perturbation,
                                f"{case.subject_id}|{case.label_value}")  # fmt: skip
        except PerturbationError as exc:
            raise CaseError(f"perturbation {case.perturbation.name}: {exc}") from exc
        voxels = int((sitk.GetArrayViewFromImage(mask) == case.label_value).sum())
    try:
        image = _normalize(image, case, settings)
    except NormalizationError as exc:
        raise CaseError(f"normalization failed: {exc}") from exc
    extractor = _extractor(dumps(settings.radiomics, indent=None, sort_keys=True))  # the cache key
    try:
        result = extractor.execute(image, mask, label=case.label_value)
    except Exception as exc:
        raise CaseError(f"pyradiomics failed: {str(exc).strip() or type(exc).__name__}") from exc
    row: dict[str, Any] = {"subject_id": case.subject_id, "label_value": case.label_value, **case.metadata}
    features = []
    for name, value in result.items():
        if name.startswith("diagnostics_"):
            continue
        v = float(value)
        row[name] = v if math.isfinite(v) else None
        features.append(name)
    return {
        "key": case.key,
        "row": row,
        "features": features,
        "seconds": time.perf_counter() - t0,
        "voxels": voxels,
    }
