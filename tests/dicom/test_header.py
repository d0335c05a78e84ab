"""Header reading on synthetic files with known ground truth, across encodings and edge cases."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import ExplicitVRBigEndian, ImplicitVRLittleEndian

from qckit.core.errors import DicomReadError
from qckit.dicom import read_header
from qckit.synth.dicom import (
    ACR_T1,
    ACR_T2,
    CT_RADIOMICS,
    SCANNERS,
    write_enhanced_series,
    write_series,
)


@pytest.fixture
def t1_file(tmp_path: Path) -> Path:
    spec = replace(ACR_T1, rows=32, columns=32, n_slices=2)
    return write_series(tmp_path / "t1", SCANNERS["philips-ingenia-1.5t"], spec).paths[0]


def _reencode(src: Path, dst: Path, syntax: str) -> Path:
    from pydicom.filewriter import dcmwrite

    ds = pydicom.dcmread(src)
    big = syntax == ExplicitVRBigEndian
    if big:
        ds.PixelData = ds.pixel_array.byteswap().tobytes()
    ds.file_meta.TransferSyntaxUID = syntax
    dcmwrite(
        dst, ds, implicit_vr=syntax == ImplicitVRLittleEndian, little_endian=not big, enforce_file_format=True
    )
    return dst


def test_classic_values_match_what_was_written(t1_file: Path):
    (group,) = read_header(t1_file)
    p = group.full_params()
    assert p["Manufacturer"] == "Philips Medical Systems"
    assert p["RepetitionTime"] == pytest.approx(499.9998)  # Philips rounding kept as stored
    assert p["EchoTime"] == 20.0
    assert p["FlipAngle"] == 90.0
    assert p["MagneticFieldStrength"] == 1.5
    assert p["PixelSpacing"] == pytest.approx([250 / 256] * 2, abs=1e-6)
    assert p["SliceThickness"] == 5.0 and p["SpacingBetweenSlices"] == 10.0
    assert p["Rows"] == 32 and p["Columns"] == 32
    assert p["InPlanePhaseEncodingDirection"] == "COL"
    assert group.orientations == {"axial"}
    assert group.subject_key.startswith("sub-") and "SECRET" not in group.subject_key


@pytest.mark.parametrize("syntax", [ImplicitVRLittleEndian, ExplicitVRBigEndian])
def test_other_transfer_syntaxes(t1_file: Path, tmp_path: Path, syntax: str):
    out = _reencode(t1_file, tmp_path / "re.dcm", syntax)
    (group,) = read_header(out)
    assert group.full_params()["RepetitionTime"] == pytest.approx(499.9998)
    assert group.full_params()["PixelSpacing"] == pytest.approx([250 / 256] * 2, abs=1e-6)


def test_file_without_preamble(t1_file: Path, tmp_path: Path):
    from pydicom.filewriter import dcmwrite

    ds = pydicom.dcmread(t1_file)
    out = tmp_path / "raw.dcm"
    del ds.file_meta
    ds.preamble = None
    dcmwrite(out, ds, implicit_vr=True, little_endian=True, force_encoding=True)
    assert out.read_bytes()[128:132] != b"DICM"
    (group,) = read_header(out)
    assert group.full_params()["EchoTime"] == 20.0


def test_long_private_header_grows_the_buffer(tmp_path: Path):
    scanner = replace(SCANNERS["siemens-skyra-3t"], private_block_bytes=200_000)
    spec = replace(ACR_T1, rows=16, columns=16, n_slices=1)
    path = write_series(tmp_path, scanner, spec).paths[0]
    (group,) = read_header(path)
    assert group.full_params()["RepetitionTime"] == 500.0


def test_the_next_file_is_read_as_far_as_the_last_header_needed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A header longer than the first read is walked a second time after a longer read; the files after it (a
    series' headers have one size) are read that far at once and walked once."""
    from qckit.dicom import header

    scanner = replace(SCANNERS["siemens-skyra-3t"], private_block_bytes=40_000)
    paths = write_series(tmp_path, scanner, replace(ACR_T1, rows=16, columns=16, n_slices=3)).paths
    walks: list[int] = []
    real = header._walk_file
    monkeypatch.setattr(header, "_walk_file", lambda buf, *a: walks.append(len(buf)) or real(buf, *a))
    monkeypatch.setattr(header, "_next_read", [header._FIRST_READ])
    groups = [read_header(p) for p in paths]
    assert len(walks) == 4 and walks[0] == header._FIRST_READ and min(walks[1:]) > 40_000, walks
    assert [g.full_params()["RepetitionTime"] for (g,) in groups] == [500.0] * 3


def test_pixel_data_found_at_the_end_is_where_the_walk_finds_it(
    t1_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Past the last wanted group the pixel data element is looked for where the image size puts it; the records
    are the walk's, and a file whose pixel data does not end it (trailing bytes) is walked to its pixel data."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    from qckit.dicom import header

    ds = pydicom.dcmread(t1_file)
    ds.PerformedProcedureStepDescription = "after the last wanted group"
    ds.RequestAttributesSequence = Sequence([Dataset()])
    ds.RequestAttributesSequence[0].RequestedProcedureID = "1"
    at_end = tmp_path / "at_end.dcm"
    ds.save_as(at_end, enforce_file_format=True)
    trailing = tmp_path / "trailing.dcm"
    trailing.write_bytes(
        at_end.read_bytes() + b"\xfc\xff\xfc\xffOB\x00\x00" + (4).to_bytes(4, "little") + b"pad!"
    )
    hits: list[bool] = []
    real = header._pixels_at_end
    monkeypatch.setattr(header, "_pixels_at_end", lambda *a: hits.append(real(*a)) or hits[-1])
    found = [read_header(p)[0] for p in (at_end, trailing)]
    assert hits == [True, False]
    monkeypatch.setattr(header, "_pixels_at_end", lambda *a: False)
    walked = [read_header(p)[0] for p in (at_end, trailing)]
    assert [g.full_params() for g in found] == [g.full_params() for g in walked]
    assert [(g.sop_uid, g.positions) for g in found] == [(g.sop_uid, g.positions) for g in walked]


def test_non_latin_character_set_uses_full_reader(t1_file: Path, tmp_path: Path):
    ds = pydicom.dcmread(t1_file)
    ds.SpecificCharacterSet = "ISO_IR 144"  # Cyrillic
    ds.SeriesDescription = "Т1 аксиальная"
    out = tmp_path / "cyr.dcm"
    ds.save_as(out, enforce_file_format=True)
    (group,) = read_header(out)
    assert group.full_params()["SeriesDescription"] == "Т1 аксиальная"


def test_ct_values(tmp_path: Path):
    spec = replace(CT_RADIOMICS, rows=16, columns=16, n_slices=1)
    (group,) = read_header(write_series(tmp_path, SCANNERS["siemens-force-ct"], spec).paths[0])
    p = group.full_params()
    assert (p["KVP"], p["XRayTubeCurrent"], p["Exposure"]) == (120.0, 200.0, 100.0)
    assert p["ConvolutionKernel"] == "Br40" and p["ReconstructionDiameter"] == 250.0
    assert p["SpiralPitchFactor"] == 0.8 and p["CTDIvol"] == 12.4
    assert p["EchoTime"] is None


def test_enhanced_multi_echo_is_split_per_echo(tmp_path: Path):
    spec = replace(ACR_T2, rows=16, columns=16)
    path = write_enhanced_series(tmp_path / "e.dcm", SCANNERS["siemens-skyra-3t"], spec).paths[0]
    groups = read_header(path)
    assert sorted(g.full_params()["EchoTime"] for g in groups) == [20.0, 80.0]
    for g in groups:
        assert g.enhanced and g.n_frames == 11 and len(g.positions) == 11
        assert g.full_params()["RepetitionTime"] == 2000.0
        assert g.full_params()["PixelSpacing"] == pytest.approx([250 / 256] * 2, abs=1e-6)
        assert g.full_params()["InPlanePhaseEncodingDirection"] == "COL"
        assert g.full_params()["ScanningSequence"] == "SE"


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty file"),
        (b"hello world, not an image\n" * 10, "not a DICOM file"),
        (b"\x00" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\x04\x00", "truncated or corrupt"),
    ],
)
def test_bad_files_have_reasons(tmp_path: Path, content: bytes, reason: str):
    p = tmp_path / "bad"
    p.write_bytes(content)
    with pytest.raises(DicomReadError, match=reason):
        read_header(p)


def test_truncated_pixel_data_is_detected(t1_file: Path, tmp_path: Path):
    data = t1_file.read_bytes()
    p = tmp_path / "cut.dcm"
    p.write_bytes(data[:-100])
    with pytest.raises(DicomReadError, match="truncated"):
        read_header(p)


def test_missing_series_uid(t1_file: Path, tmp_path: Path):
    ds = pydicom.dcmread(t1_file)
    del ds.SeriesInstanceUID
    p = tmp_path / "nouid.dcm"
    ds.save_as(p, enforce_file_format=True)
    with pytest.raises(DicomReadError, match="SeriesInstanceUID"):
        read_header(p)


def test_dicomdir_is_rejected(tmp_path: Path):
    from pydicom.fileset import FileSet

    src = write_series(
        tmp_path / "src", SCANNERS["ge-mr750-3t"], replace(ACR_T1, rows=8, columns=8, n_slices=1)
    )
    fs = FileSet()
    fs.add(src.paths[0])
    fs.write(tmp_path / "media")
    with pytest.raises(DicomReadError, match="DICOMDIR"):
        read_header(tmp_path / "media" / "DICOMDIR")


def test_permission_error_is_reported(t1_file: Path, monkeypatch: pytest.MonkeyPatch):
    import qckit.dicom.header as header

    def deny(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(header.os, "open", deny)
    with pytest.raises(DicomReadError, match="permission denied"):
        read_header(t1_file)


def test_only_regular_files_are_read_and_every_descriptor_is_closed(t1_file: Path, tmp_path: Path):
    """The header reader opens a descriptor (no Python file object: three system calls fewer per file) without
    blocking, refuses a FIFO or a folder on the open descriptor before reading a byte, and closes every
    descriptor it opened: good files, the long header that grows the read, and each refusal."""
    import os
    import signal

    from qckit.core.errors import ReadCause

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    scanner = replace(SCANNERS["siemens-skyra-3t"], private_block_bytes=200_000)  # past the first 16 KiB read
    long = write_series(tmp_path / "long", scanner, replace(ACR_T1, rows=16, columns=16, n_slices=1)).paths[0]
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(t1_file.read_bytes()[:-100])

    def blocked(*_: object) -> None:
        raise TimeoutError("blocked on a FIFO")

    old = signal.signal(signal.SIGALRM, blocked)
    signal.alarm(20)
    try:
        before = len(os.listdir("/proc/self/fd"))
        for _ in range(3):
            assert read_header(t1_file) and read_header(long)
            for bad, why, cause in ((fifo, "named pipe", ReadCause.NOT_REGULAR),
                                    (tmp_path, "is a directory", ReadCause.NOT_REGULAR),
                                    (cut, "truncated", None)):  # fmt: skip
                with pytest.raises(DicomReadError, match=why) as err:
                    read_header(bad)
                assert cause is None or err.value.cause is cause
        assert len(os.listdir("/proc/self/fd")) == before
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _both_paths(path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """read_header through the element walker, then through pydicom's element generator (the walker's fallback):
    the groups (or the error) of each, as text."""
    from qckit.dicom import header

    def groups() -> str:
        try:
            return repr(
                [
                    (
                        g.series_uid,
                        g.acq_key,
                        g.full_params(),
                        g.subject_key,
                        g.sop_uid,
                        g.positions,
                        g.enhanced,
                    )
                    for g in header.read_header(path)
                ]
            )
        except DicomReadError as exc:
            return f"error: {exc}"

    walked = groups()

    def unusual(*_: object) -> None:
        raise header._Unusual

    with monkeypatch.context() as m:
        m.setattr(header, "_walk_file", unusual)
        generated = groups()
    return walked, generated


@pytest.mark.parametrize("implicit", [False, True])
def test_walker_skips_nested_undefined_length_sequences(
    t1_file: Path, tmp_path: Path, implicit: bool, monkeypatch: pytest.MonkeyPatch
):
    """Undefined-length sequences (items of undefined and defined length, a sequence inside an item, an empty
    item) before the wanted values and the pixels: the walker reads what pydicom's generator reads."""
    from pydicom.dataset import Dataset
    from pydicom.filewriter import dcmwrite
    from pydicom.sequence import Sequence

    ds = pydicom.dcmread(t1_file)
    inner = Dataset()
    inner.CodeValue, inner.CodeMeaning = "123", "x" * 41
    item = Dataset()
    item.ReferencedSOPInstanceUID = "1.2.3"
    item.ConceptNameCodeSequence = Sequence([inner, Dataset()])
    ds.ReferencedImageSequence = Sequence([item, Dataset(), item])  # (0008,1140): before EchoTime and Rows
    ds.add_new(0x00291010, "OB", b"\x01\x02" * 3000)  # a private block in the way
    for el in (ds[0x00081140],):
        el.is_undefined_length = True
        for it in el.value:
            it.is_undefined_length_sequence_item = True
    out = tmp_path / "seq.dcm"
    if implicit:
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    dcmwrite(out, ds, implicit_vr=implicit, enforce_file_format=True)
    assert b"\xfe\xff\xdd\xe0" in out.read_bytes() and b"\xfe\xff\x0d\xe0" in out.read_bytes()  # delimiters
    walked, generated = _both_paths(out, monkeypatch)
    assert walked == generated and "error" not in walked
    from qckit.dicom import header

    raw = out.read_bytes()
    assert header._walk_file(raw, 132, len(raw)) is not None  # walked, not handed to the fallback
    (group,) = read_header(out)
    assert group.full_params()["EchoTime"] == 20.0 and group.full_params()["Rows"] == 32


def test_walker_agrees_with_pydicom_on_corrupt_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Every corrupted variant (truncations, flipped bytes, bad lengths) gives the walker the same groups or the
    same reason as pydicom's generator."""
    from qckit.testing.corrupt import make_variants

    good = write_series(
        tmp_path / "good", SCANNERS["siemens-skyra-3t"], replace(ACR_T1, rows=24, columns=24, n_slices=3)
    ).paths
    variants = make_variants(good, tmp_path / "bad", n=120, seed=11)
    disagree = [v.kind for v in variants if len(set(_both_paths(v.path, monkeypatch))) != 1]
    assert not disagree
