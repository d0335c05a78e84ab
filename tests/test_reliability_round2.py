"""Reliability round 2 (issue "Reliability round 2"), through the CLI: each test names the campaign's case and what
happened before the fix (blocked forever, traceback, partial file, silent wrong output)."""

from __future__ import annotations

import io
import json
import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from typer.testing import CliRunner

from qckit.cli import app
from qckit.core.jsonio import strict_loads
from qckit.testing.features import make_feature_table

runner = CliRunner()


@pytest.fixture
def no_hang() -> Iterator[None]:
    """A read that blocks (a FIFO opened for reading) fails the test after 20 s instead of hanging the suite."""

    def boom(*_: object) -> None:
        raise TimeoutError("blocked on a FIFO")

    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


# 6. five inputs blocked forever on a FIFO (and /dev/zero): refused without opening for a blocking read
def test_no_file_input_blocks_on_a_fifo_or_a_device(
    tmp_path: Path, no_hang: None, monkeypatch: pytest.MonkeyPatch
):
    from qckit.phantoms.load import load_phantom
    from qckit.synth.relaxometry import RelaxScan, write_relaxometry

    arr = load_phantom("ismrm-nist-system").phantom.sphere_array(5)
    relax = write_relaxometry(tmp_path / "relax", arr, arr.reference("T1", 1.5).values_ms[:14], "T1",
                              scan=RelaxScan(seed=1)).folder  # fmt: skip
    fifo = _fifo(tmp_path / "pipe.yaml")
    res = runner.invoke(app, ["phantom", "relaxometry", str(relax), "--reference", str(fifo), "-o",
                              str(tmp_path / "r"), "-q"])  # fmt: skip
    assert res.exit_code == 2 and "named pipe (FIFO): not read" in res.output, res.output
    res = runner.invoke(app, ["phantom", "relaxometry", str(relax), "--reference", "/dev/zero", "-o",
                              str(tmp_path / "r"), "-q"])  # fmt: skip
    assert res.exit_code == 2 and "device: not read" in res.output, res.output
    img = tmp_path / "img.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.random.default_rng(0).normal(100, 10, (8, 16, 16)).astype(np.float32)),
                    str(img))  # fmt: skip
    res = runner.invoke(app, ["normalize", str(img), "-m", "nyul", "--landmarks", str(_fifo(tmp_path / "lm.json")),
                              "-o", str(tmp_path / "n")])  # fmt: skip
    assert res.exit_code == 2 and "named pipe (FIFO)" in res.output, res.output
    monkeypatch.setenv("QCKIT_KEY_FILE", str(_fifo(tmp_path / "key")))
    monkeypatch.delenv("QCKIT_PSEUDONYM_KEY", raising=False)
    res = runner.invoke(app, ["scan", str(relax), "--json", str(tmp_path / "i.json"), "-q"])
    assert res.exit_code == 2 and "pseudonym key file" in res.output and "FIFO" in res.output, res.output
    cert_dir = tmp_path / "certs" / "a"
    cert_dir.mkdir(parents=True)
    _fifo(cert_dir / "certificate.json")
    res = runner.invoke(app, ["qualify", "summary", str(tmp_path / "certs"), "-o", str(tmp_path / "s"), "-q"])
    assert res.exit_code == 2 and "FIFO" in res.output, res.output


# 12. a missing QCKIT_KEY_FILE fell back to the public key silently; a non-ASCII key file gave a traceback
def test_a_named_key_file_is_read_or_the_run_stops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from pydicom.data import get_testdata_file

    d = tmp_path / "d"
    d.mkdir()
    (d / "a.dcm").write_bytes(Path(get_testdata_file("MR_small.dcm")).read_bytes())
    monkeypatch.delenv("QCKIT_PSEUDONYM_KEY", raising=False)
    monkeypatch.setenv("QCKIT_KEY_FILE", str(tmp_path / "nope.key"))
    res = runner.invoke(app, ["scan", str(d), "--json", str(tmp_path / "i.json"), "-q"])
    assert res.exit_code == 2 and "QCKIT_KEY_FILE" in res.output and not (tmp_path / "i.json").exists()
    (tmp_path / "k.key").write_bytes("clé ".encode() * 20)
    monkeypatch.setenv("QCKIT_KEY_FILE", str(tmp_path / "k.key"))
    res = runner.invoke(app, ["scan", str(d), "--json", str(tmp_path / "i.json"), "-q"])
    assert res.exit_code == 2 and "ASCII" in res.output and "Traceback" not in res.output


# 2. key init left a temp file when the disk was full
def test_key_init_leaves_nothing_on_a_full_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import errno

    real = os.fsync

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    target = tmp_path / "cfg" / "site.key"
    res = runner.invoke(app, ["key", "init", "--path", str(target)])
    monkeypatch.setattr(os, "fsync", real)
    assert res.exit_code == 2 and "No space left on device" in res.output and str(target) in res.output
    assert list((tmp_path / "cfg").iterdir()) == []  # no key, no temp file


# 2. SimpleITK's NIfTI writer reported a short write without raising: normalize exited 0 with a corrupt output
def test_normalize_on_a_full_disk_exits_2_with_no_output_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    img = tmp_path / "img.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.random.default_rng(0).normal(100, 10, (8, 16, 16)).astype(np.float32)),
                    str(img))  # fmt: skip
    real = sitk.WriteImage

    def short_write(image, path, *a, **k):  # noqa: ANN001, ANN002, ANN003, ANN202 - what ITK does on ENOSPC
        real(image, path, *a, **k)
        with open(path, "r+b") as fh:
            fh.truncate(os.path.getsize(path) // 3)  # "wrote only N of M bytes", no exception

    monkeypatch.setattr(sitk, "WriteImage", short_write)
    out = tmp_path / "out"
    res = runner.invoke(app, ["normalize", str(img), "-m", "zscore", "-o", str(out)])
    assert res.exit_code == 2, res.output
    assert "does not read back whole" in res.output and "Traceback" not in res.output
    assert not [p for p in out.rglob("*") if p.is_file()]  # neither the output nor a temporary file


# 10. YAML nesting (a RecursionError traceback of 200 KB) and 5000-digit integers (a ValueError traceback)
@pytest.mark.parametrize("text,expected", [("a: " + "[" * 3000 + "]" * 3000 + "\n", "nested"),
                                           ("a: " + "9" * 5000 + "\n", "digits"),
                                           ("a: 1." + "5" * 5000 + "\n", "digits")])  # fmt: skip
def test_yaml_nesting_and_number_size_are_bounded(tmp_path: Path, text: str, expected: str):
    bad = tmp_path / "p.yaml"
    bad.write_text(text)
    res = runner.invoke(app, ["protocol", "check", str(tmp_path), "-p", str(bad)])
    assert res.exit_code == 2 and expected in res.output and len(res.output) < 5000, res.output[:500]


# 8. terminal escapes in DICOM text and file names reached the terminal raw (also on a real TTY)
def test_control_characters_never_reach_the_terminal(tmp_path: Path):
    from rich.table import Table

    from qckit.cli._common import SafeConsole

    evil = "ACR\x1b]0;owned\x07\x1b]52;c;ZXZpbA==\x07\x1b[2J\x9b6n"
    buf = io.StringIO()
    con = SafeConsole(file=buf, force_terminal=True, color_system="truecolor", markup=False)
    con.print(f"series {evil}", style="bold", highlight=False)
    t = Table("series")
    t.add_row(evil)
    con.print(t)
    out = buf.getvalue()
    assert "\x1b]" not in out and "\x9b" not in out and "\x1b[2J" not in out
    assert "\\x1b]0;owned" in out and "\x1b[1m" in out  # escaped text, rich's own styling kept
    d = tmp_path / "d\x1b[2Jx"
    res = runner.invoke(app, ["scan", str(d)])
    assert res.exit_code == 2 and "\x1b" not in res.output and "\\x1b[2J" in res.output
    import pydicom
    from pydicom.data import get_testdata_file

    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    ds.SeriesDescription = evil[:40]
    (tmp_path / "e").mkdir()
    ds.save_as(tmp_path / "e" / "a.dcm")
    for args in (
        ["scan", str(tmp_path / "e")],
        ["protocol", "check", str(tmp_path / "e"), "-p", "acr-mri-large"],
    ):
        res = runner.invoke(app, args)
        assert "\\x1b]0;owned" in res.output and "\x1b" not in res.output, (args, res.output)


def _model(tmp_path: Path) -> tuple[pd.DataFrame, list[str], Path]:
    table, truth = make_feature_table(n_sites=3, n_per_site=25, n_features=6, seed=4)
    src = tmp_path / "t.csv"
    table.to_csv(src, index=False)
    res = runner.invoke(app, ["harmonize", "fit", str(src), "-b", "site", "--categorical", "sex", "--continuous",
                              "age", "--label", "label", "-o", str(tmp_path / "m")])  # fmt: skip
    assert res.exit_code == 0, res.output
    return table, list(truth.features), src


def _resign(folder: Path, meta: dict, arrays: dict | None = None) -> None:
    import hashlib

    from qckit.core.jsonio import write_json
    from qckit.harmonize.methods import description_digest, npz_bytes

    if arrays is not None:
        blob = npz_bytes(arrays)
        (folder / "arrays.npz").write_bytes(blob)
        meta["arrays_sha256"] = hashlib.sha256(blob).hexdigest()
    meta["meta_sha256"] = description_digest(meta)
    write_json(folder / "model.json", meta)


# 9. a model without meta_sha256 skipped the checksum; re-signed malformed models gave tracebacks
def test_model_files_without_checksum_are_refused_and_damaged_ones_never_crash(tmp_path: Path):
    table, feats, src = _model(tmp_path)
    m = tmp_path / "m"
    meta = json.loads((m / "model.json").read_text())
    with np.load(m / "arrays.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    apply = ["harmonize", "apply", str(src), "--model", str(m), "-o", str(tmp_path / "a.csv")]
    v1 = {k: v for k, v in meta.items() if k not in ("meta_sha256", "batch_recipe")} | {"format_version": 1}
    v1["params"] = {**v1["params"], "ref_batch": None}
    (m / "model.json").write_text(json.dumps(v1))
    res = runner.invoke(app, apply)
    assert res.exit_code == 2 and "no checksum" in res.output and "harmonize upgrade" in res.output
    assert runner.invoke(app, ["harmonize", "upgrade", str(m), "-q"]).exit_code == 0
    assert runner.invoke(app, apply).exit_code == 0  # re-signed by the explicit command
    meta = json.loads((m / "model.json").read_text())
    for name, change in (
        ("ref_level text", lambda md, ar: md.update(ref_level="abc")),
        ("extra B_hat rows", lambda md, ar: ar.update(B_hat=np.vstack([ar["B_hat"], ar["B_hat"]]))),
        ("string arrays", lambda md, ar: ar.update(gamma_star=ar["gamma_star"].astype(str))),
        ("features not a list", lambda md, ar: md.update(features=5)),
    ):
        md, ar = json.loads(json.dumps(meta)), dict(arrays)
        change(md, ar)
        _resign(m, md, ar)
        res = runner.invoke(app, apply)
        assert res.exit_code == 2 and "Traceback" not in res.output and "model" in res.output, (
            name,
            res.output,
        )
        assert res.exception is None or isinstance(res.exception, SystemExit), (name, res.exception)


# 5. harmonize apply copied unknown columns unharmonized and "harmonized" data on another scale silently
def test_harmonize_apply_checks_what_it_is_given(tmp_path: Path):
    table, feats, src = _model(tmp_path)
    apply = ["harmonize", "apply", "--model", str(tmp_path / "m"), "-o", str(tmp_path / "a.csv")]
    extra = table.assign(original_shape_Sphericity=np.linspace(0.5, 0.9, len(table)))
    extra.to_csv(tmp_path / "x.csv", index=False)
    res = runner.invoke(app, ["harmonize", "apply", str(tmp_path / "x.csv"), *apply[2:]])
    assert res.exit_code == 2 and "original_shape_Sphericity" in res.output and "--pass-through" in res.output
    assert not (tmp_path / "a.csv").exists()
    res = runner.invoke(app, ["harmonize", "apply", str(tmp_path / "x.csv"), *apply[2:], "--pass-through",
                              "--json", str(tmp_path / "a.json")])  # fmt: skip
    assert res.exit_code == 0 and "passed through unharmonized" in res.output
    assert strict_loads((tmp_path / "a.json").read_text())["passed_through"] == ["original_shape_Sphericity"]
    scaled = table.copy()
    scaled[feats] = scaled[feats] * 1000
    scaled.to_csv(tmp_path / "k.csv", index=False)
    res = runner.invoke(app, ["harmonize", "apply", str(tmp_path / "k.csv"), *apply[2:], "--json",
                              str(tmp_path / "k.json")])  # fmt: skip
    assert res.exit_code == 0 and "far outside the training distribution" in res.output
    assert set(strict_loads((tmp_path / "k.json").read_text())["far_from_training"]) == set(feats)
    res = runner.invoke(app, ["harmonize", "apply", str(src), *apply[2:], "--json", str(tmp_path / "s.json")])
    assert res.exit_code == 0 and "far outside" not in res.output  # the training rows themselves: no warning
    text = table.astype({feats[0]: object})
    text.loc[3, feats[0]] = "abc"
    text.to_csv(tmp_path / "t2.csv", index=False)
    res = runner.invoke(app, ["harmonize", "apply", str(tmp_path / "t2.csv"), *apply[2:]])
    assert (
        res.exit_code == 2
        and feats[0] in res.output
        and "'abc'" in res.output
        and "Traceback" not in res.output
    )


def _certificate(key: str, verdict: str = "qualified") -> dict:
    return {"certificate": "qckit scanner qualification", "scanner": {"key": key, "vendor": "GE", "model": "Signa",
            "software_versions": ["27"]}, "verdict": verdict, "profile": "p", "provenance": {"date": "2026-01-05"},
            "criteria": [{"kind": "protocol", "verdict": "pass"}], "missing": []}  # fmt: skip


# 7. one damaged certificate stopped the whole summary with a traceback; the JSON broke its own schema
def test_qualify_summary_lists_damaged_certificates_and_summarises_the_rest(tmp_path: Path):
    from qckit.schemas import load_schema

    root = tmp_path / "certs"
    good = root / "good"
    good.mkdir(parents=True)
    (good / "certificate.json").write_text(json.dumps(_certificate("GE-Signa-1")))
    bad = {
        "truncated": json.dumps(_certificate("X"))[:80],
        "deep": "[" * 100000 + "]" * 100000,
        "wrong types": json.dumps({**_certificate("Y"), "scanner": ["GE"]}),
        "nan": json.dumps(_certificate("Z")).replace('"qualified"', "NaN"),
        "unknown verdict": json.dumps(_certificate("W", verdict="super")),
    }
    for name, text in bad.items():
        (root / name).mkdir()
        (root / name / "certificate.json").write_text(text)
    res = runner.invoke(app, ["qualify", "summary", str(root), "-o", str(tmp_path / "s"), "--json",
                              str(tmp_path / "s.json"), "-q"])  # fmt: skip
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    doc = strict_loads((tmp_path / "s.json").read_text())
    assert [s["key"] for s in doc["scanners"]] == ["GE-Signa-1"] and doc["reproducibility"] is None
    assert sorted(Path(d["path"]).parent.name for d in doc["damaged"]) == sorted(bad)
    assert res.output.count("warning: left out") == len(bad)
    try:
        import jsonschema
    except ImportError:  # the schema's own rule, checked by hand: reproducibility may be null
        assert "null" in load_schema("qualify-summary")["properties"]["reproducibility"]["type"]
    else:
        jsonschema.validate(doc, load_schema("qualify-summary"))


def test_regular_file_reader_refuses_without_blocking(tmp_path: Path, no_hang: None):
    from qckit.core.errors import QckitInputError
    from qckit.core.files import read_regular

    fifo = _fifo(tmp_path / "f")
    for path, why in (
        (fifo, "named pipe (FIFO)"),
        (Path("/dev/zero"), "device"),
        (tmp_path, "not a regular file"),
    ):
        with pytest.raises(QckitInputError, match=re.escape(why)):
            read_regular(path, what="input")
    big = tmp_path / "big"
    big.write_bytes(b"x" * 100)
    with pytest.raises(QckitInputError, match="more than the 10"):
        read_regular(big, limit=10)
    assert read_regular(big) == b"x" * 100


def _acr_t1(tmp_path: Path) -> tuple[Path, list[Path]]:
    import pydicom

    from qckit.phantoms.load import load_phantom
    from qckit.synth.acr import AcrScanner, write_session

    write_session(
        load_phantom("acr-mri-large").phantom, AcrScanner(key="bad"), tmp_path / "s", series=("t1",)
    )
    files = sorted(
        (tmp_path / "s").rglob("*.dcm"), key=lambda f: float(pydicom.dcmread(f).ImagePositionPatient[2])
    )
    return tmp_path / "s", files


# 4. one bad file inside a good series aborted qc run ("the pixel data of series None cannot be read")
def test_a_bad_file_inside_a_series_is_left_out_and_listed(tmp_path: Path):
    import pydicom

    root, files = _acr_t1(tmp_path)
    ds = pydicom.dcmread(files[2])  # slice 3: no ACR test uses it
    ds.Rows, ds.Columns = 65535, 32768  # claims 4 GB of pixel data
    ds.save_as(files[2])
    res = runner.invoke(app, ["qc", "run", str(root), "--no-store", "-o", str(tmp_path / "o"), "-q"])
    doc = strict_loads((tmp_path / "o" / "qc-result.json").read_text())
    assert res.exit_code in (0, 1) and "Traceback" not in res.output
    assert [p["reason"] for p in doc["problems"] if files[2].name in p["reason"]]  # the file is named
    assert {m["name"] for m in doc["measurements"]} >= {"piu", "slice_thickness", "low_contrast_total"}


def test_two_images_at_one_position_are_refused_naming_both_and_a_copy_is_dropped(tmp_path: Path):
    import pydicom
    from pydicom.uid import generate_uid

    root, files = _acr_t1(tmp_path)
    copy = pydicom.dcmread(files[4])
    copy.SOPInstanceUID = generate_uid()  # the same image exported twice under a new UID
    copy.save_as(root / "copy.dcm")
    res = runner.invoke(app, ["qc", "run", str(root), "--no-store", "-o", str(tmp_path / "o"), "-q"])
    assert res.exit_code in (0, 1), res.output  # measured: the copy is the same image
    other = pydicom.dcmread(files[5])
    other.ImagePositionPatient = copy.ImagePositionPatient
    other.SOPInstanceUID = generate_uid()
    other.save_as(root / "other.dcm")
    res = runner.invoke(app, ["qc", "run", str(root), "--no-store", "-o", str(tmp_path / "o2"), "-q"])
    assert res.exit_code == 2 and "held by two different images" in res.output and "other.dcm" in res.output
    assert "None" not in res.output and "Traceback" not in res.output


# 12. normalize of an enhanced multi-frame DICOM folder: a SimpleITK traceback (GDCM reads it as 4-D)
def test_normalize_reads_an_enhanced_multiframe_folder(tmp_path: Path):
    from dataclasses import replace

    from qckit.synth.dicom import ACR_T1, SCANNERS, write_enhanced_series

    write_enhanced_series(tmp_path / "enh" / "IM1", SCANNERS["siemens-skyra-3t"],
                          replace(ACR_T1, rows=32, columns=32))  # fmt: skip
    res = runner.invoke(app, ["normalize", str(tmp_path / "enh"), "-m", "zscore", "-o", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    (out,) = list((tmp_path / "o").rglob("*.nii.gz"))
    img = sitk.ReadImage(str(out))
    assert img.GetDimension() == 3 and img.GetSize() == (32, 32, ACR_T1.n_slices)
    four = sitk.JoinSeries([sitk.GetImageFromArray(np.ones((4, 8, 8), np.float32))] * 3)
    sitk.WriteImage(four, str(tmp_path / "4d.nii.gz"))
    res = runner.invoke(
        app, ["normalize", str(tmp_path / "4d.nii.gz"), "-m", "zscore", "-o", str(tmp_path / "o4")]
    )
    assert res.exit_code == 2 and "4-D image of 3 volumes" in res.output and "Traceback" not in res.output


# 12. float pixel data (parametric maps) was "truncated or incomplete file: no pixel data element"
def test_float_pixel_data_is_an_image(tmp_path: Path):
    import pydicom
    from pydicom.data import get_testdata_file

    from qckit.dicom.volume import load_volumes

    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    arr = ds.pixel_array.astype(np.float32) * 0.5
    del ds.PixelData
    for k in (
        "BitsStored",
        "HighBit",
        "PixelRepresentation",
        "SmallestImagePixelValue",
        "LargestImagePixelValue",
    ):
        if k in ds:
            delattr(ds, k)
    ds.BitsAllocated = 32
    ds.FloatPixelData = arr.tobytes()
    (tmp_path / "d").mkdir()
    ds.save_as(tmp_path / "d" / "a.dcm")
    res = runner.invoke(app, ["scan", str(tmp_path / "d"), "--json", str(tmp_path / "i.json"), "-q"])
    doc = strict_loads((tmp_path / "i.json").read_text())
    assert res.exit_code == 0 and len(doc["series"]) == 1 and not doc["errors"], res.output
    (vol,), bad = load_volumes([str(tmp_path / "d" / "a.dcm")])
    assert not bad and np.allclose(vol.array[0], arr)


# 12. slice thickness was measured (0.3 mm, "fail") on a phantom rotated 15-30 degrees
def test_slice_thickness_is_not_measured_on_a_phantom_rotated_beyond_the_limit(tmp_path: Path):
    from qckit.phantoms.load import load_phantom
    from qckit.synth.acr import AcrScanner, write_session

    write_session(load_phantom("acr-mri-large").phantom, AcrScanner(key="rot", rotation_deg=20), tmp_path / "s",
                  series=("t1",))  # fmt: skip
    res = runner.invoke(
        app, ["qc", "run", str(tmp_path / "s"), "--no-store", "-o", str(tmp_path / "o"), "-q"]
    )
    doc = strict_loads((tmp_path / "o" / "qc-result.json").read_text())
    assert res.exit_code == 1 and doc["verdict"] == "incomplete"
    assert not [m for m in doc["measurements"] if m["name"].startswith("slice_thickness")]
    (why,) = [p["reason"] for p in doc["problems"] if p["name"].startswith("slice_thickness")]
    assert "rotated 19." in why or "rotated 20." in why


# 12. `qc run --all` stopped every remaining session when one output folder could not be created
def test_qc_run_all_goes_on_when_one_output_folder_cannot_be_made(tmp_path: Path):
    from qckit.core.files import safe_name
    from qckit.phantoms.load import load_phantom
    from qckit.synth.acr import AcrScanner, write_session

    acr, sc = load_phantom("acr-mri-large").phantom, AcrScanner(key="all")
    for day in ("20260105", "20260112", "20260119"):
        write_session(acr, sc, tmp_path / "in" / day, series=("t1",), date=day)
    res = runner.invoke(app, ["qc", "run", str(tmp_path / "in"), "--all", "--no-store", "-o", str(tmp_path / "a"),
                              "--json", str(tmp_path / "a.json"), "-q"])  # fmt: skip
    labels = [s["session"]["label"] for s in strict_loads((tmp_path / "a.json").read_text())["sessions"]]
    assert len(labels) == 3, res.output
    out = tmp_path / "b"
    out.mkdir()
    (out / safe_name(labels[0])).write_text("a file where the session's folder should go")
    db = tmp_path / "h.sqlite"
    res = runner.invoke(
        app, ["qc", "run", str(tmp_path / "in"), "--all", "--db", str(db), "-o", str(out), "-q"]
    )
    assert res.exit_code == 2 and f"session {labels[0]}" in res.output and "Traceback" not in res.output
    assert all((out / safe_name(lb) / "qc-result.json").is_file() for lb in labels[1:])
    from qckit.history.store import open_store

    with open_store(f"sqlite:///{db}") as st:
        assert st.n_sessions() == 2  # the session whose outputs could not be written is not recorded
