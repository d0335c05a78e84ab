"""Agreement with independent readings of real third-party DICOM (../shared/data)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qckit.dicom import scan

pytestmark = pytest.mark.reference

# qckit column -> (dcm2niix BIDS key, factor to qckit's unit, absolute tolerance or None for exact)
DCM2NIIX_FIELDS = {
    "RepetitionTime": ("RepetitionTime", 1000.0, 1e-3),  # s -> ms
    "EchoTime": ("EchoTime", 1000.0, 1e-3),
    "FlipAngle": ("FlipAngle", 1.0, 1e-6),
    "MagneticFieldStrength": ("MagneticFieldStrength", 1.0, 1e-6),
    "PixelBandwidth": ("PixelBandwidth", 1.0, 1e-6),
    "SliceThickness": ("SliceThickness", 1.0, 1e-6),
    "SpacingBetweenSlices": ("SpacingBetweenSlices", 1.0, 1e-6),
    "EchoTrainLength": ("EchoTrainLength", 1.0, 0),
    "SeriesNumber": ("SeriesNumber", 1.0, 0),
    "Vendor": ("Manufacturer", None, None),
    "ManufacturerModelName": ("ManufacturersModelName", None, None),
    "InPlanePhaseEncodingDirection": ("InPlanePhaseEncodingDirectionDICOM", None, None),
    "SeriesDescription": ("SeriesDescription", None, None),
    "ProtocolName": ("ProtocolName", None, None),
    "SoftwareVersions": ("SoftwareVersions", None, None),
    "DeviceSerialNumber": ("DeviceSerialNumber", None, None),
    "StationName": ("StationName", None, None),
    "ScanningSequence": ("ScanningSequence", None, None),
    "SequenceVariant": ("SequenceVariant", None, None),
    "MRAcquisitionType": ("MRAcquisitionType", None, None),
    "ReceiveCoilName": ("ReceiveCoilName", None, None),
}


def dcm2niix_comparison(data: Path) -> list[dict]:
    """One row per (series, field) that dcm2niix reports: qckit value, reference, difference, tolerance."""
    refs = {}
    for f in sorted((data / "dcm_qa_nih" / "Ref").glob("*.json")):
        j = json.loads(f.read_text())
        refs[(j["Manufacturer"], int(j["SeriesNumber"]))] = (f.stem, j)
    result = scan(data / "dcm_qa_nih" / "In", workers=1)
    rows = []
    for s in result.series:
        stem, ref = refs[(s["Vendor"], s["SeriesNumber"])]
        for col, (key, factor, tol) in DCM2NIIX_FIELDS.items():
            if key not in ref:
                continue
            if factor is None:
                rows.append(
                    {
                        "series": stem,
                        "field": col,
                        "qckit": s[col],
                        "dcm2niix": ref[key],
                        "diff": None,
                        "tolerance": "exact",
                        "ok": s[col] == ref[key],
                    }
                )
            else:
                expected = ref[key] * factor
                diff = None if s[col] is None else s[col] - expected
                rows.append(
                    {
                        "series": stem,
                        "field": col,
                        "qckit": s[col],
                        "dcm2niix": expected,
                        "diff": diff,
                        "tolerance": tol,
                        "ok": diff is not None and abs(diff) <= tol,
                    }
                )
    return rows


# Known, documented gap: classic Siemens headers lack the standard ReceiveCoilName (0018,1250); dcm2niix reads
# the coil from the proprietary CSA header, which qckit does not parse. qckit reports None, never a wrong value.
KNOWN_GAPS = {("ReceiveCoilName", "Siemens")}


def test_scan_matches_dcm2niix(reference_data: Path):
    rows = dcm2niix_comparison(reference_data)
    series = {r["series"] for r in rows}
    assert len(series) == 8  # 4 GE + 4 Siemens series, each matched to its sidecar
    gaps = [r for r in rows if (r["field"], "Siemens") in KNOWN_GAPS and r["series"].startswith("EPI")]
    assert gaps and all(r["qckit"] is None for r in gaps)
    bad = [r for r in rows if not r["ok"] and r not in gaps]
    assert not bad, bad
    # the fields the issue names are all compared for every series
    for field in (
        "RepetitionTime",
        "EchoTime",
        "FlipAngle",
        "MagneticFieldStrength",
        "Vendor",
        "ManufacturerModelName",
        "PixelBandwidth",
        "InPlanePhaseEncodingDirection",
    ):
        assert {r["series"] for r in rows if r["field"] == field} == series


def test_batch_guess_session_is_separated(reference_data: Path):
    root = reference_data / "hazen" / "batch_guess"
    result = scan(root, workers=2)
    assert result.errors == []
    folders = sorted(p.name for p in root.iterdir() if p.is_dir())
    # one row per folder: every series (repeats, localisers, SNR pairs, DWI and ADC) is its own
    assert sorted(r["folder"] for r in result.series) == folders
    assert len({r["series_uid"] for r in result.series}) == len(folders)
    by_folder = {r["folder"]: r for r in result.series}
    assert by_folder["ACR_T1"]["n_frames"] == 11 and by_folder["ACR_T1_2"]["n_frames"] == 11
    assert by_folder["DIFFUSION_READ"]["n_images"] == 11
    assert by_folder["DIFFUSION_READ_ADC"]["ImageType"].startswith("DERIVED")
    assert by_folder["ACR_PRELOCALISER"]["Orientation"] == "mixed"  # tri-planar localiser


def test_sola_enhanced_is_one_11_slice_series(reference_data: Path):
    result = scan(reference_data / "hazen" / "acr" / "Siemens_Sola_1.5T_T1", workers=1)
    (row,) = result.series
    assert row["enhanced"] and row["n_images"] == 1
    assert row["n_frames"] == 11 and row["n_slices"] == 11
    assert row["Orientation"] == "axial"
    assert row["RepetitionTime"] == 500.0 and row["EchoTime"] == 20.0
    assert row["SliceThickness"] == 5.0 and row["SpacingBetweenSlices"] == 10.0
    assert row["PixelSpacing"] == pytest.approx([0.976562, 0.976562])
    assert row["MagneticFieldStrength"] == 1.5 and row["Vendor"] == "Siemens"


def test_hazen_acr_tree_indexes_without_errors(reference_data: Path):
    result = scan(reference_data / "hazen" / "acr", workers=2)
    assert result.errors == []
    ge = next(r for r in result.series if r["folder"] == "GE")
    assert (ge["Rows"], ge["Columns"]) == (512, 512)
    # acr/Siemens and acr/Siemens2 are two exports of one acquisition: one series, flagged as inconsistent
    siemens = next(r for r in result.series if r["SeriesDescription"] == "ACR_T1_TRA_HEAD")
    assert siemens["n_images"] == 22 and siemens["n_slices"] == 11
    assert "DeviceSerialNumber" in siemens["inconsistent"]


def test_pixel_data_found_at_the_end_gives_the_walks_index(
    reference_data: Path, monkeypatch: pytest.MonkeyPatch
):
    """On the real headers (GE, Siemens, Philips; MR and CT) the index is the same whether the pixel data is looked
    for where the image size puts it or walked to, and the look-up finds it in most files."""
    from qckit.dicom import header

    hits: list[bool] = []
    real = header._pixels_at_end
    monkeypatch.setattr(header, "_pixels_at_end", lambda *a: hits.append(real(*a)) or hits[-1])
    roots = [reference_data / p for p in ("dcm_qa_nih", "hazen", "relaxometry", "diffusion", "ct")]
    roots = [r for r in roots if r.is_dir()]
    found = [scan(r, workers=1) for r in roots]
    monkeypatch.setattr(header, "_pixels_at_end", lambda *a: False)
    walked = [scan(r, workers=1) for r in roots]
    for a, b in zip(found, walked, strict=True):
        assert a.series == b.series and a.files == b.files
        assert [e.to_dict() for e in a.errors] == [e.to_dict() for e in b.errors]
    assert sum(hits) > 0.9 * len(hits) > 100, (sum(hits), len(hits))
