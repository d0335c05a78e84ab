"""Reliability under hostile input, through the CLI (issue "Reliability under hostile input"). Each test names
the case and what happened before the fix; all run in seconds on files made here."""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from pydicom.data import get_testdata_file
from typer.testing import CliRunner

from qckit.cli import app
from qckit.core.jsonio import strict_loads

runner = CliRunner()
FAST = "setting: {binCount: 8}\nimageType: {Original: {}}\nfeatureClass: {firstorder: [Mean]}\n"


def _dicom_dir(tmp: Path) -> Path:
    d = tmp / "dicom"
    d.mkdir(parents=True)
    shutil.copy(get_testdata_file("MR_small.dcm"), d / "a.dcm")
    return d


def _volume(path: Path, shape=(12, 16, 16), seed: int = 0, value: float | None = None) -> Path:
    rng = np.random.default_rng(seed)
    arr = (
        rng.normal(500, 50, shape).astype(np.float32) if value is None else np.full(shape, value, np.float32)
    )
    sitk.WriteImage(sitk.GetImageFromArray(arr), str(path))
    return path


def _mask(path: Path, shape=(12, 16, 16)) -> Path:
    m = np.zeros(shape, np.uint8)
    m[3:9, 4:12, 4:12] = 1
    sitk.WriteImage(sitk.GetImageFromArray(m), str(path))
    return path


# 1. FIFO: scan, qc run and extract hung forever on `mkfifo T/p`
def test_a_fifo_is_listed_never_opened(tmp_path: Path):
    d = _dicom_dir(tmp_path)
    os.mkfifo(d / "pipe")
    res = runner.invoke(app, ["scan", str(d), "--json", str(tmp_path / "i.json"), "-q"])
    assert res.exit_code == 0, res.output
    errors = strict_loads((tmp_path / "i.json").read_text())["errors"]
    assert {"path": "pipe", "reason": "named pipe (FIFO): not read"} in errors
    qc = runner.invoke(
        app, ["qc", "run", str(d), "--no-store", "-o", str(tmp_path / "qc"), "--phantom", "acr-mri-large"]
    )
    assert qc.exit_code == 2  # no ACR series: an input error, not a hang
    man = tmp_path / "m.csv"
    pd.DataFrame({"subject_id": ["s"], "image": [str(d / "pipe")], "mask": [str(d / "pipe")]}).to_csv(
        man, index=False
    )
    (tmp_path / "p.yaml").write_text(FAST)
    ex = runner.invoke(
        app,
        ["extract", str(man), "--params", str(tmp_path / "p.yaml"), "-o", str(tmp_path / "f.parquet"), "-q"],
    )
    assert ex.exit_code == 1 and "named pipe (FIFO): not read" in ex.output


def test_a_symlinked_folder_is_listed(tmp_path: Path):
    d = _dicom_dir(tmp_path)
    (d / "linked").symlink_to(tmp_path, target_is_directory=True)
    res = runner.invoke(app, ["scan", str(d), "--json", str(tmp_path / "i.json"), "-q"])
    assert res.exit_code == 0
    errors = strict_loads((tmp_path / "i.json").read_text())["errors"]
    assert {"path": "linked", "reason": "symbolic link to a folder: not followed"} in errors


# 2. a worker that dies (OOM-killed) crashed the batch with BrokenProcessPool and no table; every re-run hit it again
def dying(case, settings):  # noqa: ANN001, ANN201 - a worker process killed on one case (module level: picklable)
    from qckit.features.runner import extract_case

    if case.subject_id == "killer":
        os._exit(137)
    return {"key": case.key, **extract_case(case, settings)}


def test_a_dying_worker_fails_its_case_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import qckit.features.runner as runner_mod

    monkeypatch.setattr(runner_mod, "run_case", dying)
    mask = _mask(tmp_path / "mask.nii.gz")
    rows = [{"subject_id": f"s{i}", "image": str(_volume(tmp_path / f"i{i}.nii.gz", seed=i)), "mask": str(mask)}
            for i in range(4)] + [{"subject_id": "killer", "image": str(tmp_path / "i0.nii.gz"), "mask": str(mask)}]  # fmt: skip
    man = tmp_path / "m.csv"
    pd.DataFrame(rows).to_csv(man, index=False)
    (tmp_path / "p.yaml").write_text(FAST)
    out = tmp_path / "f.parquet"
    res = runner.invoke(
        app, ["extract", str(man), "--params", str(tmp_path / "p.yaml"), "-o", str(out), "-j", "2", "-q"]
    )
    assert res.exit_code == 1, res.output
    assert len(pd.read_parquet(out)) == 4
    prov = json.loads((tmp_path / "f.parquet.provenance.json").read_text())
    assert [f["subject_id"] for f in prov["failed"]] == ["killer"] and "worker process died" in prov[
        "failed"
    ][0]["reason"]
    again = runner.invoke(
        app, ["extract", str(man), "--params", str(tmp_path / "p.yaml"), "-o", str(out), "-j", "2"]
    )
    assert again.exit_code == 1 and "0 computed, 5 resumed" in again.output  # the failed case is not re-run


# 9. a corrupt or empty part file broke every resume (JSONDecodeError)
def test_a_damaged_part_is_recomputed(tmp_path: Path):
    mask = _mask(tmp_path / "mask.nii.gz")
    rows = [
        {"subject_id": f"s{i}", "image": str(_volume(tmp_path / f"i{i}.nii.gz", seed=i)), "mask": str(mask)}
        for i in range(2)
    ]
    man = tmp_path / "m.csv"
    pd.DataFrame(rows).to_csv(man, index=False)
    (tmp_path / "p.yaml").write_text(FAST)
    out = tmp_path / "f.parquet"
    assert (
        runner.invoke(
            app, ["extract", str(man), "--params", str(tmp_path / "p.yaml"), "-o", str(out), "-j", "1", "-q"]
        ).exit_code
        == 0
    )
    part = sorted((tmp_path / "f.parquet.parts").glob("s0*.json"))[0]
    part.write_text("")
    res = runner.invoke(
        app, ["extract", str(man), "--params", str(tmp_path / "p.yaml"), "-o", str(out), "-j", "1"]
    )
    assert res.exit_code == 0, res.output
    assert "1 computed, 1 resumed" in res.output and len(pd.read_parquet(out)) == 2


# 3. normalize wrote <basename>_norm.nii.gz for STS_*/MR_T1_image.nii.gz: 9 outputs printed, one file left
# 6. normalize stopped at the first bad input
def test_normalize_keeps_one_output_per_input_never_overwrites_and_tries_every_input(tmp_path: Path):
    imgs = []
    for i in range(3):
        (tmp_path / f"STS_{i:03d}").mkdir()
        imgs.append(_volume(tmp_path / f"STS_{i:03d}" / "MR_T1_image.nii.gz", seed=i))
    (tmp_path / "STS_bad").mkdir()
    bad = tmp_path / "STS_bad" / "MR_T1_image.nii.gz"
    bad.write_bytes(b"not an image")
    out = tmp_path / "out"
    args = ["normalize", str(imgs[0]), str(bad), str(imgs[1]), str(imgs[2]), "-m", "zscore", "-o", str(out)]
    res = runner.invoke(app, args)
    assert res.exit_code == 1, res.output  # one input failed: reported, the others done
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.nii.gz")) == [
        f"STS_{i:03d}/MR_T1_image_norm.nii.gz" for i in range(3)
    ]
    assert "failed" in res.output and "STS_bad" in res.output and "3 of 4 image(s) normalized" in res.output
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "--overwrite" in again.output
    assert runner.invoke(app, [*args, "--overwrite"]).exit_code == 1


# 4. no size check: a 1.3 KB NIfTI claiming 2000x2000x1000 voxels was OOM-killed (137) with no message
# 12. RGB images became 5-D NIfTIs; NaN voxels were replaced silently; a folder of junk became a 1-slice volume
def test_images_are_checked_before_they_are_loaded(tmp_path: Path):
    src = _volume(tmp_path / "small.nii")
    data = bytearray(src.read_bytes())
    dims = np.frombuffer(bytes(data[40:56]), dtype="<i2").copy()
    dims[1:4] = (2000, 2000, 1000)
    data[40:56] = dims.astype("<i2").tobytes()
    lie = tmp_path / "lie.nii"
    lie.write_bytes(bytes(data[:2000]))
    res = runner.invoke(app, ["normalize", str(lie), "-m", "zscore", "-o", str(tmp_path / "o")])
    assert res.exit_code == 2 and "2000 x 2000 x 1000" in res.output and "corrupt or truncated" in res.output
    big = _volume(tmp_path / "big.nii.gz")
    res = runner.invoke(
        app, ["normalize", str(big), "-m", "zscore", "-o", str(tmp_path / "o2"), "--max-voxels", "100"]
    )
    assert res.exit_code == 2 and "exceed the limit of 100" in res.output
    rgb = tmp_path / "rgb.nii.gz"
    sitk.WriteImage(sitk.Image([8, 8, 4], sitk.sitkVectorFloat32, 3), str(rgb))
    res = runner.invoke(app, ["normalize", str(rgb), "-m", "zscore", "-o", str(tmp_path / "o3")])
    assert res.exit_code == 2 and "3 components per voxel" in res.output
    import nibabel as nib

    arr = np.full((6, 8, 8), 100.0, np.float32)
    arr[2, 3, 3] = np.nan
    nan = tmp_path / "nan.nii.gz"
    nib.save(nib.Nifti1Image(arr, np.eye(4)), str(nan))  # (SimpleITK would write the NaN as 0)
    res = runner.invoke(app, ["normalize", str(nan), "-m", "zscore", "-o", str(tmp_path / "o4")])
    assert res.exit_code == 2 and "1 voxel(s) are NaN or infinite" in res.output
    junk = _dicom_dir(tmp_path / "j")
    (junk / "notes.txt").write_text("junk")
    res = runner.invoke(app, ["normalize", str(junk), "-m", "zscore", "-o", str(tmp_path / "o5")])
    assert res.exit_code == 2 and "not part of its DICOM series" in res.output


# 5. read-only or full output disks: raw OSError tracebacks (exit 1) and truncated files in 14 commands
def test_a_full_disk_is_exit_2_with_the_path_and_nothing_partial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    d = _dicom_dir(tmp_path)
    real_replace = os.replace

    def full(src, dst):  # noqa: ANN001, ANN202
        if str(dst).startswith(str(tmp_path / "out")):
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", full)
    for args in (["scan", str(d), "--json", str(tmp_path / "out" / "i.json"), "-q"],
                 ["scan", str(d), "-o", str(tmp_path / "out" / "i.csv"), "-q"],
                 ["protocol", "check", str(d), "-p", "acr-mri-large", "--json", str(tmp_path / "out" / "c.json"), "-q"]):  # fmt: skip
        res = runner.invoke(app, args)
        assert res.exit_code == 2, (args, res.output)
        assert "No space left on device" in res.output and str(tmp_path / "out") in res.output
        assert "Traceback" not in res.output
        assert list((tmp_path / "out").iterdir()) == []  # no partial file, no temporary file


def test_a_full_disk_while_rendering_a_phantom_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    real_replace = os.replace
    calls = {"n": 0}

    def full_later(src, dst):  # noqa: ANN001, ANN202 - the disk fills up after a few files
        calls["n"] += 1
        if calls["n"] > 5:
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", full_later)
    out = tmp_path / "synth"
    res = runner.invoke(app, ["phantom", "synth", "-o", str(out), "--phantom", "qckit-dro", "--scanners", "1",
                              "--repeats", "1"])  # fmt: skip
    assert res.exit_code == 2 and "No space left on device" in res.output and "Traceback" not in res.output
    assert [p for p in out.rglob("*") if p.name.startswith(".") or p.name.endswith(".tmp")] == []
    assert len(list(out.rglob("*.dcm"))) == 5  # the files written before the disk filled are whole


def test_an_output_under_a_file_is_exit_2(tmp_path: Path):
    d = _dicom_dir(tmp_path)
    (tmp_path / "afile").write_text("x")
    res = runner.invoke(app, ["scan", str(d), "--json", str(tmp_path / "afile" / "i.json"), "-q"])
    assert res.exit_code == 2 and "afile" in res.output and "Traceback" not in res.output


# 7. non-UTF-8 file names crashed scan --out CSV/Parquet and --errors (UnicodeEncodeError)
def test_non_utf8_file_names_are_written_losslessly(tmp_path: Path):
    d = _dicom_dir(tmp_path)
    raw = os.fsencode(str(d)) + b"/caf\xe9.txt"
    with open(raw, "wb") as fh:
        fh.write(b"not dicom")
    for out in ("i.csv", "i.parquet"):
        res = runner.invoke(app, ["scan", str(d), "-o", str(tmp_path / out), "--errors", str(tmp_path / "bad.csv"),
                                  "--json", str(tmp_path / "i.json"), "-q"])  # fmt: skip
        assert res.exit_code == 0, res.output
    assert b"caf\xe9.txt" in (tmp_path / "bad.csv").read_bytes()  # CSV: the original bytes
    paths = [e["path"] for e in strict_loads((tmp_path / "i.json").read_text(encoding="utf-8"))["errors"]]
    assert "caf\\xe9.txt" in paths  # JSON: valid UTF-8, the undecodable byte as a \\xNN escape


def test_non_utf8_yaml_is_an_input_error(tmp_path: Path):
    bad = tmp_path / "p.yaml"
    bad.write_bytes("name: caf\xe9\n".encode("latin-1"))
    res = runner.invoke(app, ["protocol", "check", str(tmp_path), "-p", str(bad)])
    assert res.exit_code == 2 and "not UTF-8" in res.output


# 8. YAML alias bombs: 470 bytes cost extract 7.2 GB; a stable-features file produced a 52 MB error message
def test_yaml_alias_bombs_are_refused_everywhere(tmp_path: Path):
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x","x"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\n")
    man = tmp_path / "m.csv"
    pd.DataFrame({"subject_id": ["s"], "image": ["i.nii.gz"], "mask": ["m.nii.gz"]}).to_csv(man, index=False)
    res = runner.invoke(app, ["extract", str(man), "--params", str(bomb), "-o", str(tmp_path / "f.parquet")])
    assert res.exit_code == 2 and "aliases expand to more than" in res.output and len(res.output) < 5000
    t = pd.DataFrame(
        {
            "subject_id": ["a", "b", "c", "d"],
            "site": ["x", "x", "y", "y"],
            "original_firstorder_Mean": [1.0, 2, 3, 4],
        }
    )
    t.to_csv(tmp_path / "t.csv", index=False)
    res = runner.invoke(app, ["harmonize", "fit", str(tmp_path / "t.csv"), "-b", "site", "-o", str(tmp_path / "m"),
                              "--stable-features", str(bomb)])  # fmt: skip
    assert res.exit_code == 2 and "aliases expand to more than" in res.output and len(res.output) < 5000


# 10. CSV formula injection: values and headers starting with = + - @ were written as they were
def test_csv_outputs_neutralise_formulas_and_json_stays_exact(tmp_path: Path):
    import pydicom

    d = tmp_path / "dicom"
    d.mkdir()
    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    ds.SeriesDescription = '=HYPERLINK("http://x")'
    ds.save_as(d / "a.dcm")
    res = runner.invoke(
        app, ["scan", str(d), "-o", str(tmp_path / "i.csv"), "--json", str(tmp_path / "i.json"), "-q"]
    )
    assert res.exit_code == 0
    assert "'=HYPERLINK" in (tmp_path / "i.csv").read_text()
    assert strict_loads((tmp_path / "i.json").read_text())["series"][0]["SeriesDescription"].startswith(
        "=HYPERLINK"
    )
    t = pd.DataFrame({"subject_id": ["@a", "b", "c", "d"], "site": ["x", "x", "y", "y"], "=cmd": [1.0, 2, 3, 4],
                      "original_firstorder_Mean": [-1.0, 2, 3, 4]})  # fmt: skip
    from qckit.core.tables import write_table

    text = write_table(t, tmp_path / "t.csv").read_text()
    assert "'@a" in text and "'=cmd" in text and "-1.0" in text and "'-1.0" not in text  # numbers untouched


# 11. the default pseudonym key is public: warn once; `qckit key init` makes a site key read automatically
def test_the_public_key_warns_and_key_init_replaces_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import qckit.cli._common as common

    monkeypatch.delenv("QCKIT_PSEUDONYM_KEY", raising=False)
    monkeypatch.delenv(
        "QCKIT_KEY_FILE", raising=False
    )  # the default place: $XDG_CONFIG_HOME/qckit/pseudonym.key
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.setattr(common, "_warned_key", False)
    d = _dicom_dir(tmp_path)
    res = runner.invoke(app, ["scan", str(d), "--json", str(tmp_path / "a.json"), "-q"])
    assert res.exit_code == 0 and res.output.count("public default secret") == 1
    before = strict_loads((tmp_path / "a.json").read_text())["series"][0]["subject_key"]
    assert runner.invoke(app, ["key", "init"]).exit_code == 0
    assert oct((tmp_path / "cfg" / "qckit" / "pseudonym.key").stat().st_mode & 0o777) == "0o600"
    assert runner.invoke(app, ["key", "init"]).exit_code == 2  # never replaced by accident
    monkeypatch.setattr(common, "_warned_key", False)
    res = runner.invoke(app, ["scan", str(d), "--json", str(tmp_path / "b.json"), "-q"])
    assert res.exit_code == 0 and "public default secret" not in res.output
    after = strict_loads((tmp_path / "b.json").read_text())["series"][0]["subject_key"]
    assert after != before and after.startswith("sub-")
    status = runner.invoke(app, ["key", "status"])
    assert "key file" in status.output


# 12. error text was parsed as terminal markup: "[postgres]" disappeared from hints and paths
def test_messages_are_printed_as_they_are(tmp_path: Path):
    odd = tmp_path / "[postgres]" / "missing"
    res = runner.invoke(app, ["scan", str(odd)])
    assert res.exit_code == 2 and "[postgres]" in res.output
