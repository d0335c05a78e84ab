"""Measure a folder of phantom scans: index, localize, place ROIs, save the masks, extract features per ROI.

Output (in `out_dir`): `scans/<scan>/image.nii.gz` and `scans/<scan>/roi-<name>.nii.gz` (the masks used, for audit),
`scans.csv` (one row per scan: pseudonymous scan key, scanner, protocol, site, repeat, localization), and the tidy
long table `measurements.csv` (scan, scanner, protocol, site, repeat, roi, feature, value, truth). Features are
pyradiomics' (named as pyradiomics names them) plus qckit's classic ROI intensity measurements:

- `intensity_mean` = mean of the ROI voxels; `intensity_sd` = their sample SD (ddof 1);
- `intensity_snr` = intensity_mean / intensity_sd (the single-ROI signal-to-noise ratio; in a uniform region the
  SD is the noise, NEMA MS 1-2008 method 4 uses a background ROI instead - see `qckit qc` for the ACR SNR).

A scan that cannot be measured (phantom not found, ROI missing) is reported in `problems` with its reason; the
other scans are measured.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from qckit.core.errors import PhantomMeasurementError, QckitInputError
from qckit.core.identity import ScannerIdentity
from qckit.core.tables import write_table
from qckit.dicom.folder import DicomFolder
from qckit.dicom.volume import Volume
from qckit.features.manifest import Case
from qckit.features.params import ExtractionSettings
from qckit.features.runner import parts_dir, run_extraction
from qckit.normalize.image import write_nifti
from qckit.phantoms.models import Phantom
from qckit.phantoms.rois import Placement, place_rois

INTENSITY_FEATURES = ("intensity_mean", "intensity_sd", "intensity_snr")
META = ("scan", "scanner", "protocol", "site", "repeat")


@dataclass
class Measurement:
    phantom: Phantom
    scans: pd.DataFrame
    long: pd.DataFrame
    problems: list[dict[str, str]] = field(default_factory=list)
    placements: dict[str, Placement] = field(default_factory=dict)
    volumes: dict[str, Volume] = field(default_factory=dict)
    out_dir: Path | None = None
    skipped: list[str] = field(default_factory=list)


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def _scanner_key(row: dict[str, Any]) -> str:
    """The scanner's `ScannerIdentity` key (the one the QC history uses)."""
    return ScannerIdentity.from_row(row).key


def _protocol_key(row: dict[str, Any]) -> str:
    """Repeats are scans with the same acquisition signature on the same scanner."""
    ps = row.get("PixelSpacing") or [None]
    coil = row.get("ReceiveCoilName")
    return (
        f"{_fmt(row.get('Orientation'))} "
        + (f"{coil} " if coil else "")
        + (
            f"{_fmt(row.get('KVP'))} kV {row.get('ConvolutionKernel') or '-'} "
            if str(row.get("Modality") or "") == "CT"  # CT: beam quality and kernel, not MR timing
            else f"TR {_fmt(row.get('RepetitionTime'))} TE {_fmt(row.get('EchoTime'))} FA {_fmt(row.get('FlipAngle'))} "
        )
        + f"ST {_fmt(row.get('SliceThickness'))} px {_fmt(round(float(ps[0]), 3) if ps[0] else None)} "
        f"{_fmt(row.get('Rows'))}x{_fmt(row.get('Columns'))}"
    )


def _scan_key(row: dict[str, Any]) -> str:
    digest = hashlib.sha256(f"{row['series_uid']}|{row.get('EchoTime')}".encode()).hexdigest()[:8]
    return f"S{int(row.get('SeriesNumber') or 0):03d}-{digest}"


def _index(series: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = [dict(r) for r in series]
    for r in rows:
        r["scan"] = _scan_key(r)
        r["scanner"] = _scanner_key(r)
        r["protocol"] = _protocol_key(r)
        r["site"] = _fmt(r.get("InstitutionName") or r.get("StationName") or r["scanner"])
    rows.sort(
        key=lambda r: (r["scanner"], r["protocol"], str(r.get("StudyDate")), r.get("SeriesNumber") or 0)
    )
    counter: dict[tuple[str, str], int] = {}
    for r in rows:
        k = (r["scanner"], r["protocol"])
        counter[k] = counter.get(k, 0) + 1
        r["repeat"] = counter[k]
    return rows


_LOCALIZER_WORDS = ("localizer", "localiser", "scout", "survey", "3-plane", "tri-pilot", "3pl")


def is_localizer(row: dict[str, Any]) -> bool:
    """A localizer series: ImageType says LOCALIZER, or its description names it (localizer, scout, survey)."""
    image_type = str(row.get("ImageType") or "").upper()
    if "LOCALIZER" in image_type:
        return True
    text = f"{row.get('SeriesDescription') or ''} {row.get('ProtocolName') or ''}".lower()
    return any(w in text for w in _LOCALIZER_WORDS)


def intensity_stats(values: np.ndarray) -> dict[str, float]:
    mean = float(values.mean())
    sd = float(values.std(ddof=1)) if values.size > 1 else float("nan")
    return {
        "intensity_mean": mean,
        "intensity_sd": sd,
        "intensity_snr": mean / sd if sd > 0 else float("nan"),
    }


def measure_folder(
    root: str | Path,
    phantom: Phantom,
    out_dir: str | Path,
    settings: ExtractionSettings,
    *,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    keep_volumes: bool = True,
    only_series: set[str] | None = None,
    source: DicomFolder | None = None,
) -> Measurement:
    """Measure every image series under `root` (see module docstring); `only_series`: just these series UIDs.

    Localizers (ImageType LOCALIZER, or described as localizer/scout/survey) are not phantom scans: they are
    listed in `skipped`, not as problems. `source`: the folder as the caller has indexed it already (`qckit
    qualify`), so its headers are not read again; pixel data is loaded only for the scans measured."""
    root, out = Path(root), Path(out_dir)
    source = source if source is not None else DicomFolder.open(root, workers=workers)
    rows = _index(source.series)
    if only_series is not None:
        rows = [r for r in rows if r["series_uid"] in only_series]
    localizers = [r for r in rows if is_localizer(r)]
    rows = [r for r in rows if not is_localizer(r)]
    out.mkdir(parents=True, exist_ok=True)
    # files that are not DICOM images (notes, ground truth, index files) are skipped quietly; broken DICOM is not
    skipped = [e.path for e in source.index.errors if e.cause.quiet]
    skipped += [f"{r['folder']} (localizer)" for r in localizers]
    problems: list[dict[str, Any]] = [
        {"scan": "-", "folder": e.path, "reason": e.reason} for e in source.index.errors if not e.cause.quiet
    ]
    cases: list[Case] = []
    intensity: list[dict[str, Any]] = []
    placements: dict[str, Placement] = {}
    kept: dict[str, Volume] = {}
    scan_rows = []
    for r in rows:
        where = f"{r['scan']} ({r['folder']}): "
        vol = source.volume(r)
        if vol is None:
            why = source.unreadable(r)
            problems.append({"scan": r["scan"], "folder": r["folder"],
                             "reason": "pixel data could not be loaded" + (f" ({why})" if why else "")})  # fmt: skip
            continue
        try:
            placement = place_rois(vol, phantom, where)
        except QckitInputError as exc:
            problems.append({"scan": r["scan"], "folder": r["folder"], "reason": str(exc)})
            continue
        sdir = out / "scans" / r["scan"]
        image = vol.to_sitk()
        image_path = write_nifti(image, sdir / "image.nii.gz")
        meta = {k: r[k] for k in META}
        for roi in phantom.rois:
            m = placement.masks[roi.name]
            mask_img = _mask_image(m, image)
            mask_path = write_nifti(mask_img, sdir / f"roi-{roi.name}.nii.gz")
            cases.append(Case(r["scan"], str(image_path), str(mask_path), 1, None, {**meta, "roi": roi.name}))
            intensity.append({**meta, "roi": roi.name, **intensity_stats(vol.array[m])})
        placements[r["scan"]] = placement
        if keep_volumes:
            kept[r["scan"]] = vol
        s = placement.summary()
        scan_rows.append(
            {
                **meta,
                "folder": r["folder"],
                "series_uid": r["series_uid"],
                "n_slices": vol.n_slices,
                "rotation_deg": s["rotation_deg"],
                "diameter_mm": float(np.mean(list(s["diameters_mm"].values()))),
            }
        )
    if not cases:
        detail = "; ".join(p["reason"] for p in problems[:3])
        raise PhantomMeasurementError(
            f"{root}: no scan of phantom '{phantom.name}' could be measured. {detail}", problems
        )
    wide_path = out / "features-wide.csv"
    shutil.rmtree(parts_dir(wide_path), ignore_errors=True)  # the images were just rewritten: extract afresh
    run = run_extraction(cases, settings, wide_path, workers=workers, progress=progress)
    problems += [
        {
            "scan": str(f.get("subject_id", "-")),
            "folder": str(f.get("image", "-")),
            "reason": str(f.get("reason")),
        }
        for f in run.failed
    ]
    long = _long_table(run.table, pd.DataFrame(intensity), phantom)
    scans_df = pd.DataFrame(scan_rows)
    write_table(scans_df, out / "scans.csv")
    write_table(long, out / "measurements.csv")
    return Measurement(phantom, scans_df, long, problems, placements, kept, out, skipped)


def _mask_image(mask: np.ndarray, like: Any) -> Any:
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(mask.astype(np.uint8))
    img.CopyInformation(like)
    return img


def _long_table(wide: pd.DataFrame, intensity: pd.DataFrame, phantom: Phantom) -> pd.DataFrame:
    id_cols = [*META, "roi"]
    frames = [intensity.melt(id_vars=id_cols, var_name="feature", value_name="value")]
    if not wide.empty:
        feats = [
            c
            for c in wide.columns
            if c.startswith(
                ("original_", "log-", "wavelet-", "square", "exponential", "logarithm", "gradient", "lbp-")
            )
        ]
        frames.append(wide[id_cols + feats].melt(id_vars=id_cols, var_name="feature", value_name="value"))
    long = pd.concat(frames, ignore_index=True)
    truth = {(r.name, f): v for r in phantom.rois for f, v in r.truth.items()}
    long["truth"] = [truth.get((roi, f), np.nan) for roi, f in zip(long["roi"], long["feature"], strict=True)]
    long["value"] = pd.to_numeric(long["value"], errors="coerce")
    return long.sort_values(["feature", "scanner", "protocol", "roi", "repeat"], kind="stable").reset_index(
        drop=True
    )
