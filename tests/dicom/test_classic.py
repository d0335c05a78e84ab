"""`qckit.dicom.classic.read_classic`: a classic image's frame attributes and pixels as pydicom gives them (pydicom
is the oracle: `dcmread(...).pixel_array` and `Dataset.get`), and None (pydicom reads it) for everything else."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless

from qckit.dicom.classic import read_classic


def _image(
    pixels: np.ndarray, *, bits: int = 16, stored: int | None = None, signed: int = 0,
    syntax: str = ExplicitVRLittleEndian, raw: bytes | None = None, **attrs: object,
) -> bytes:  # fmt: skip
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    meta.MediaStorageSOPInstanceUID = "1.2.3.4.5"
    meta.TransferSyntaxUID = syntax
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.Manufacturer = "SIEMENS "
    ds.SeriesInstanceUID = "1.2.3.4.6"
    ds.SliceThickness = "4.0"
    ds.EchoTime = "102"
    ds.InstanceNumber = "7"
    ds.ImagePositionPatient = ["-110.0", "-110.0", "12.5"]
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.PixelSpacing = ["1.71875", "1.71875"]
    ds.RescaleSlope, ds.RescaleIntercept = "2", "-1024"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = bits, stored or bits, (stored or bits) - 1
    ds.PixelRepresentation = signed
    for k, v in attrs.items():
        setattr(ds, k, v)
    ds.PixelData = pixels.tobytes() if raw is None else raw
    buf = io.BytesIO()
    ds.save_as(buf, implicit_vr=syntax == ImplicitVRLittleEndian, little_endian=syntax != ExplicitVRBigEndian,
               enforce_file_format=True)  # fmt: skip
    return buf.getvalue()


def _same_as_pydicom(data: bytes) -> None:
    frame = read_classic(data)
    assert frame is not None
    ds = pydicom.dcmread(io.BytesIO(data))
    assert frame.pixel_array.dtype == ds.pixel_array.dtype and np.array_equal(
        frame.pixel_array, ds.pixel_array
    )
    for key in frame:
        if key != "PixelData":
            got, want = frame.get(key), ds.get(key)
            if isinstance(key, tuple):
                got, want = got.value, want.value
            assert got == want, key


RNG = np.random.default_rng(3)


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
@pytest.mark.parametrize(
    ("dtype", "bits", "stored", "signed"),
    [("<u2", 16, 16, 0), ("<u2", 16, 12, 0), ("<i2", 16, 16, 1), ("<i2", 16, 12, 1), ("u1", 8, 8, 0),
     ("i1", 8, 7, 1), ("<u4", 32, 32, 0), ("<i4", 32, 20, 1)],
)  # fmt: skip
def test_pixels_and_values_are_pydicoms(syntax: str, dtype: str, bits: int, stored: int, signed: int):
    """Every native grey-scale layout, with garbage in the unused high bits (cleared or sign-extended as pydicom
    does) and an odd number of 8-bit pixels (padded to even)."""
    info = np.iinfo(np.dtype(dtype))
    pixels = RNG.integers(info.min, info.max, size=(5, 7), dtype=np.dtype(dtype), endpoint=True)
    data = _image(pixels, bits=bits, stored=stored, signed=signed, syntax=syntax)
    _same_as_pydicom(data)
    frame = read_classic(data)
    assert frame is not None
    if stored < bits:  # the test can fail: the high bits were set
        assert not np.array_equal(frame.pixel_array, pixels)


def test_vendor_b_values_and_scales_read_as_pydicom_reads_them():
    pixels = RNG.integers(0, 4095, size=(4, 4), dtype=np.uint16)
    for syntax in (ExplicitVRLittleEndian, ImplicitVRLittleEndian):
        data = _image(pixels, syntax=syntax, SequenceName="*ep_b1000t", DiffusionBValue=1000.0)
        _same_as_pydicom(data)
    ds = pydicom.dcmread(io.BytesIO(_image(pixels)))
    ds.private_block(0x0019, "SIEMENS MR HEADER", create=True).add_new(0x0C, "IS", "1500")
    ds.private_block(0x0043, "GEMS_PARM_01", create=True).add_new(0x39, "IS", ["1000001000", "8", "0", "0"])
    ds.private_block(0x2005, "Philips MR Imaging DD 001", create=True).add_new(0x0E, "FL", 0.125)
    ds.private_block(0x2001, "Philips Imaging DD 001", create=True).add_new(0x03, "FL", 500.0)
    for implicit in (False, True):
        buf = io.BytesIO()
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
        ds.save_as(buf, implicit_vr=implicit, little_endian=True, enforce_file_format=True)
        if implicit:  # the Philips b-factor is binary: without a VR, pydicom reads it by its creator
            assert read_classic(buf.getvalue()) is None
            del ds[0x20011003]
            buf = io.BytesIO()
            ds.save_as(buf, implicit_vr=True, little_endian=True, enforce_file_format=True)
        _same_as_pydicom(buf.getvalue())
        frame = read_classic(buf.getvalue())
        assert frame is not None and frame.get(0x2005100E).value == pytest.approx(0.125)
        assert frame[(0x0043, 0x1039)].value == [1000001000, 8, 0, 0] and (0x0019, 0x100C) in frame


@pytest.mark.parametrize(
    "case",
    ["rgb", "two frames", "mosaic", "short pixels", "long pixels", "big endian", "compressed", "world mapping",
     "bad decimal", "empty value", "non-Latin", "not DICOM", "no pixels", "enhanced", "palette", "private as UN",
     "two UIDs"],
)  # fmt: skip
def test_what_pydicom_must_read_is_left_to_it(case: str):
    """None, so that the loader gives pydicom's dataset (and pydicom's error) for it."""
    pixels = RNG.integers(0, 4095, size=(4, 6), dtype=np.uint16)
    kw: dict[str, object] = {}
    if case == "rgb":
        kw = {"SamplesPerPixel": 3, "PhotometricInterpretation": "RGB", "PlanarConfiguration": 0}
        pixels = np.repeat(pixels, 3, axis=1)
    elif case == "two frames":
        kw = {"NumberOfFrames": 2}
        pixels = np.vstack([pixels, pixels])
    elif case == "mosaic":
        kw = {"ImageType": ["ORIGINAL", "PRIMARY", "M", "ND", "MOSAIC"]}
    elif case == "short pixels":
        kw = {"raw": pixels.tobytes()[:-2]}
    elif case == "long pixels":
        kw = {"raw": pixels.tobytes() + b"\0\0"}
    elif case == "big endian":
        kw = {"syntax": ExplicitVRBigEndian, "raw": pixels.byteswap().tobytes()}
    elif case == "compressed":
        kw = {"syntax": RLELossless}
    elif case == "world mapping":
        item = Dataset()
        item.RealWorldValueSlope = 0.5
        kw = {"RealWorldValueMappingSequence": [item]}
    elif case == "bad decimal":
        kw = {"SliceThickness": "4.25"}  # written valid, then made "4,25" (pydicom refuses to write it)
    elif case == "empty value":
        kw = {"EchoTime": ""}
    elif case == "non-Latin":
        kw = {"SpecificCharacterSet": "ISO 2022 IR 87"}
    elif case == "palette":
        kw = {"PhotometricInterpretation": "PALETTE COLOR"}
    raw = kw.pop("raw", None)
    syntax = str(kw.pop("syntax", ExplicitVRLittleEndian))
    if case == "compressed":
        data = _image(pixels, syntax=ExplicitVRLittleEndian)
        ds = pydicom.dcmread(io.BytesIO(data))
        ds.compress(RLELossless)
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        data = buf.getvalue()
    else:
        data = _image(pixels, raw=raw, syntax=syntax, **kw)  # type: ignore[arg-type]
    if case == "bad decimal":
        assert data.count(b"4.25") == 1
        data = data.replace(b"4.25", b"4,25")
    elif case == "not DICOM":
        data = b"\0" * 128 + b"XXXX" + data[132:]
    elif case == "no pixels":
        ds = pydicom.dcmread(io.BytesIO(data))
        del ds.PixelData
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        data = buf.getvalue()
    elif case in ("private as UN", "two UIDs"):
        ds = pydicom.dcmread(io.BytesIO(data))
        if case == "two UIDs":
            ds.SeriesInstanceUID = ["1.2.3", "1.2.4"]
        else:  # pydicom may read it by its private dictionary, or leave its bytes
            ds.add_new(0x20011003, "UN", np.float32(500.0).tobytes())
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        data = buf.getvalue()
    elif case == "enhanced":
        data = data.replace(b"1.2.840.10008.5.1.4.1.1.4\0", b"1.2.840.10008.5.1.4.1.1.4.1")
    assert read_classic(data) is None


def test_the_frame_attributes_have_pydicoms_tags_and_vrs():
    """The table of what a classic frame is read from (`classic._ATTRIBUTES`, written out so that reading does
    not need pydicom's dictionary) against pydicom's data dictionary, as `qckit.dicom.tags.DICTIONARY` is; a
    private attribute's key is its own tag."""
    from pydicom.datadict import dictionary_VR, tag_for_keyword

    from qckit.dicom import classic

    for name, (tag, vr) in classic._ATTRIBUTES.items():
        if isinstance(name, tuple):
            assert tag == (name[0] << 16) | name[1], name
        else:
            assert (tag, vr) == (int(tag_for_keyword(name)), dictionary_VR(tag_for_keyword(name))), name
