"""The loader reads only a classic image's frame attributes (`qckit.dicom.classic`, or pydicom's `specific_tags`
for what that module leaves to pydicom: `qckit.dicom.volume._frame_tags()`) and a volume's first file whole for its
header: the volumes, headers and file errors must be those of parsing every file whole, on every layout the
synthetic scanners write (Siemens private and standard b-values, GE and Philips b-value tags, Philips private
scale slope, RealWorldValueMapping, CT rescale, enhanced multi-frame DWI and EPI, time series, damaged files) and
on the third-party reference data."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest

from qckit.dicom import volume as volume_mod
from qckit.dicom.index import walk_files
from qckit.phantoms.load import load_phantom
from qckit.synth.acr import AcrScanner, write_session
from qckit.synth.diffusion import DwiScan, write_dwi
from qckit.synth.epi import EpiScan, render_epi, write_epi_dicom
from qckit.synth.relaxometry import RelaxScan, write_relaxometry

SMALL_DWI = DwiScan(rows=64, pixel_mm=3.4375, n_slices=5, spacing_mm=5.0, thickness_mm=4.0, seed=1)


def _whole(path: str) -> volume_mod._Read:
    """What the loader read before: every element of every file."""
    with open(path, "rb") as fh:
        if os.fstat(fh.fileno()).st_size > volume_mod._IN_MEMORY_UP_TO:
            return volume_mod._Read(pydicom.dcmread(fh), None, light=False)
        data = fh.read()
    return volume_mod._Read(pydicom.dcmread(io.BytesIO(data)), data, light=False)


def _loaded_both_ways(monkeypatch: pytest.MonkeyPatch, files: list[str]):  # noqa: ANN202
    light = volume_mod.load_volumes(files)
    with monkeypatch.context() as m:
        m.setattr(volume_mod, "_read_dataset", _whole)
        whole = volume_mod.load_volumes(files)
    return light, whole


def _assert_same(light, whole, where: str) -> None:  # noqa: ANN001
    (lv, lbad), (wv, wbad) = light, whole
    assert [(e.path, e.reason, e.cause) for e in lbad] == [(e.path, e.reason, e.cause) for e in wbad], where
    assert len(lv) == len(wv), where
    for a, b in zip(lv, wv, strict=True):
        for name in ("series_uid", "echo_time", "spacing", "origin", "direction", "thickness", "paths",
                     "slice_positions", "scales", "b_value", "time_index"):  # fmt: skip
            assert getattr(a, name) == getattr(b, name), (where, name)
        assert a.array.dtype == b.array.dtype and np.array_equal(a.array, b.array, equal_nan=True), where
        assert a.header == b.header, where
        assert all(kw not in a.header for kw in volume_mod.PIXEL_KEYWORDS), where


def _by_folder(root: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for f in sorted(walk_files(root)[0]):
        out.setdefault(os.path.dirname(f), []).append(f)
    return out


def _files(root: Path) -> list[str]:
    return [f for fs in _by_folder(root).values() for f in fs]


def _edit(files: list[str], change) -> None:  # noqa: ANN001
    for f in files:
        ds = pydicom.dcmread(f)
        change(ds)
        ds.save_as(f)


@pytest.fixture(scope="module")
def layouts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("layouts")
    write_session(load_phantom("acr-mri-large").phantom, AcrScanner(key="frames", matrix=128, noise_sd=4.0),
                  root / "acr", series=("t1", "t2"))  # fmt: skip
    vials = load_phantom("caliber-diffusion").phantom.vials
    for layout in ("per_b", "multi_b", "enhanced"):
        write_dwi(root / f"dwi-{layout}", vials, scan=SMALL_DWI, layout=layout)
    # GE and Philips write the b-value in their own private tags, not the standard one
    shutil.copytree(root / "dwi-multi_b", root / "dwi-ge")
    shutil.copytree(root / "dwi-multi_b", root / "dwi-philips")

    def to_ge(ds: pydicom.Dataset) -> None:
        if "DiffusionBValue" in ds:
            ds.add_new((0x0043, 0x1039), "IS", [f"{1_000_000_000 + int(ds.DiffusionBValue)}", "0", "0", "0"])
            del ds.DiffusionBValue
        ds.Manufacturer = "GE MEDICAL SYSTEMS"

    def to_philips(ds: pydicom.Dataset) -> None:
        if "DiffusionBValue" in ds:
            ds.add_new((0x2001, 0x1003), "FL", float(ds.DiffusionBValue))
            del ds.DiffusionBValue
        ds.Manufacturer = "Philips Medical Systems"
        ds.private_block(0x2005, "Philips MR Imaging DD 001", create=True).add_new(0x0E, "FL", 0.25)

    _edit(_files(root / "dwi-ge"), to_ge)
    _edit(_files(root / "dwi-philips"), to_philips)
    arr = load_phantom("ismrm-nist-system").phantom.sphere_array(5)
    write_relaxometry(root / "philips-t1", arr, arr.reference("T1", 1.5).values_ms[:14], "T1",
                      scan=RelaxScan(rows=64, seed=3), philips=True)  # fmt: skip
    # a real-world value mapping on a CT-like rescaled series
    shutil.copytree(root / "acr", root / "rwv")

    def rwv(ds: pydicom.Dataset) -> None:
        item = pydicom.Dataset()
        item.RealWorldValueSlope, item.RealWorldValueIntercept = 0.5, 10.0
        ds.RealWorldValueMappingSequence = [item]
        ds.RescaleSlope, ds.RescaleIntercept = 2, -1024

    _edit(_files(root / "rwv"), rwv)
    epi = EpiScan(matrix=32, n_slices=3, n_frames=6)
    frames, _truth = render_epi(epi)
    write_epi_dicom(root / "epi-classic", frames, epi, scanner="ge-mr750-3t")
    write_epi_dicom(root / "epi-enhanced", frames, epi, layout="enhanced")
    # damaged files: pixel data cut short, a file that is not DICOM, a header without pixels
    damaged = root / "damaged"
    shutil.copytree(root / "acr", damaged)
    files = _files(damaged)
    ds = pydicom.dcmread(files[0])
    ds.PixelData = ds.PixelData[:-100]
    ds.save_as(files[0])
    ds = pydicom.dcmread(files[1])
    del ds.PixelData
    ds.save_as(files[1])
    (damaged / "notes.txt").write_text("not an image\n")
    return root


def test_synthetic_layouts_load_as_from_whole_files(layouts: Path, monkeypatch: pytest.MonkeyPatch):
    checked = 0
    for folder, files in _by_folder(layouts).items():
        light, whole = _loaded_both_ways(monkeypatch, files)
        _assert_same(light, whole, folder)
        checked += len(light[0])
    assert checked >= 20  # every layout made volumes
    # what the comparison covers: b-values from each vendor's tag, the Philips scale, the real-world mapping
    assert {v.b_value for v in volume_mod.load_volumes(_files(layouts / "dwi-ge"))[0]} >= {0.0, 500.0, 1000.0}
    vols = volume_mod.load_volumes(_files(layouts / "dwi-philips"))[0]
    assert {v.b_value for v in vols} >= {0.0, 500.0, 1000.0}
    assert vols[0].scales[0].slope == pytest.approx(1 / 0.25) and "2005,100E" in vols[0].scales[0].source
    vols = volume_mod.load_volumes(_files(layouts / "rwv"))[0]
    assert "RealWorldValueMapping" in vols[0].scales[0].source
    assert len(volume_mod.load_volumes(_files(layouts / "epi-classic"))[0]) == 6  # time points
    assert len(volume_mod.load_volumes(_files(layouts / "damaged"))[1]) == 3


def test_the_frame_read_is_light_unless_the_file_needs_its_functional_groups(layouts: Path):
    classic = next(iter(_by_folder(layouts / "dwi-per_b").values()))[0]
    read = volume_mod._read_dataset(classic)
    assert read.light and "PatientName" not in read.ds and "PatientName" in read.header("PixelData")
    assert "PixelData" not in read.header("PixelData") and "PixelData" in read.ds
    enhanced = max(_files(layouts / "dwi-enhanced"), key=os.path.getsize)  # the multi-frame DWI file
    read = volume_mod._read_dataset(enhanced)
    assert not read.light and "PerFrameFunctionalGroupsSequence" in read.ds


@pytest.mark.parametrize("part", ["hazen", "relaxometry", "ct", "diffusion", "dcm_qa_nih"])
def test_reference_data_loads_as_from_whole_files(
    part: str, reference_data: Path, monkeypatch: pytest.MonkeyPatch
):
    root = reference_data / part
    if not root.is_dir():
        pytest.skip(f"reference data {part} not found under {reference_data}")
    for folder, files in _by_folder(root).items():
        light, whole = _loaded_both_ways(monkeypatch, files)
        _assert_same(light, whole, folder)
