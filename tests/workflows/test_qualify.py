"""`qckit qualify`: certificates per scanner from a submission, the multi-site summary, the demo's three sites."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pydicom
import pytest
import yaml
from pydicom.uid import generate_uid
from typer.testing import CliRunner

from qckit.cli import app
from qckit.core.jsonio import strict_loads
from qckit.core.tables import read_feature_list
from qckit.history.store import open_store
from qckit.schemas import load_schema
from qckit.synth.qualification import PLANTED, SITES, write_submissions
from tests.report.test_html import CHROMIUM_FLAGS

runner = CliRunner()
PROFILE = "brain-mri-multicentre-qualification"
SECRETS = ("Doe^Jane", "PID-4711-SECRET", "19610203", "Volunteer^site-a", "site-b-SECRET", "19800101")


def _qualify(*args: str) -> object:
    return runner.invoke(app, ["qualify", *args])


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The three virtual sites qualified into one output folder and one QC history."""
    root = tmp_path_factory.mktemp("sites")
    subs = write_submissions(root / "submissions")
    out = root / "out"
    codes = {}
    for site, folder in subs.items():
        res = _qualify(str(folder), "--profile", PROFILE, "-o", str(out / site), "--db", str(root / "h.sqlite"),
                       "--json", str(root / f"{site}.json"))  # fmt: skip
        codes[site] = res.exit_code
        assert res.exit_code in (0, 1), res.output
    assert codes == {"site-a": 0, "site-b": 1, "site-c": 1}
    return root, out


def _cert(root: Path, site: str) -> dict:
    (cert,) = strict_loads((root / f"{site}.json").read_text())["certificates"]
    return cert


def test_the_three_sites_get_their_planted_verdicts(sites: tuple[Path, Path]):
    root, _ = sites
    for site, verdict in PLANTED.items():
        assert _cert(root, site)["verdict"] == verdict, site
    b = _cert(root, "site-b")
    failed = [c for c in b["criteria"] if c["verdict"] == "fail"]
    assert len(failed) == 1 and "SliceThickness 5.0" in failed[0]["detail"] and "t2w" in failed[0]["name"]
    c = _cert(root, "site-c")
    assert [m["criterion"] for m in c["missing"]] == ["series present: flair_3d"]
    assert "FLAIR" in c["missing"][0]["what"] and "please submit it" in c["missing"][0]["what"]
    a = _cert(root, "site-a")
    assert a["missing"] == [] and {x["kind"] for x in a["criteria"]} == {
        "completeness",
        "protocol",
        "stability",
    }


def test_a_certificate_carries_values_limits_evidence_and_provenance(sites: tuple[Path, Path]):
    root, out = sites
    cert = _cert(root, "site-a")
    jsonschema.validate(cert, load_schema("qualify-certificate"))
    stab = next(c for c in cert["criteria"] if c["kind"] == "stability")
    assert (
        stab["unit"] == "% of features"
        and stab["limit"] == ">= 50 %"
        and "upper 95 % bound" in stab["detail"]
    )
    folder = out / "site-a" / cert["scanner"]["key"]
    for c in cert["criteria"]:
        for e in c["evidence"]:
            assert (folder / e).is_file(), e
    prov = cert["provenance"]
    assert (
        prov["profile_sha256"] and len(prov["input_uids"]) == 3 + 3
    )  # three brain series, three phantom repeats
    assert prov["qckit_version"] and prov["date"]
    assert cert["scanner"]["serial"] == "QA-0001" and cert["scanner"]["vendor"] == "Siemens"


def test_the_summary_names_reproducible_features_and_the_scanner_to_harmonize(sites: tuple[Path, Path]):
    root, out = sites
    res = _qualify("summary", str(out), "-o", str(root / "summary"), "--json", str(root / "summary.json"))
    assert res.exit_code == 1, res.output  # not every site qualified
    doc = strict_loads((root / "summary.json").read_text())
    jsonschema.validate(doc, load_schema("qualify-summary"))
    verdicts = {s["key"].split("-")[0]: s["verdict"] for s in doc["scanners"]}
    assert verdicts == {"Siemens": "qualified", "GE": "not qualified", "Philips": "incomplete"}
    vendors = {g["group"]: g["share_qualified"] for g in doc["breakdown"]["by_vendor"]}
    assert vendors == {"GE": 0.0, "Philips": 0.0, "Siemens": 1.0}
    assert {g["group"] for g in doc["breakdown"]["by_software"]} >= {"syngo MR E11"}
    rep = doc["reproducibility"]
    needs = {n["key"] for n in rep["harmonization"] if n["needs"]}
    assert needs == {"GE-DISCOVERY_MR750-QB_0002"}  # the site whose scanner reads 30 % high
    stable = read_feature_list(rep["stable_list"])
    assert 0 < len(stable) == rep["n_candidates"] < rep["n_features"]
    assert not any(f.startswith("intensity_") for f in stable)
    assert rep["verdict_basis"] == "upper_ci"  # the default, as qualification profiles
    res = _qualify("summary", str(out), "-o", str(root / "summary-point"), "--basis", "point", "-q")
    point = strict_loads((root / "summary-point" / "qualification-summary.json").read_text())[
        "reproducibility"
    ]
    assert point["verdict_basis"] == "point" and point["n_candidates"] > rep["n_candidates"]
    assert _qualify("summary", str(out), "-o", str(root / "x"), "--basis", "mean").exit_code == 2
    # the same summary from the QC history the certificates were stored in
    res = _qualify("summary", str(root / "h.sqlite"), "-o", str(root / "summary-db"), "-q")
    assert res.exit_code == 1, res.output
    from_db = strict_loads((root / "summary-db" / "qualification-summary.json").read_text())
    assert [s["verdict"] for s in from_db["scanners"]] == [s["verdict"] for s in doc["scanners"]]


def test_requalification_is_compared_with_the_first(sites: tuple[Path, Path], tmp_path: Path):
    root, _ = sites
    folder = root / "submissions" / "site-a"
    res = _qualify(str(folder), "--profile", PROFILE, "-o", str(tmp_path / "again"), "--db", str(root / "h.sqlite"),
                   "--json", str(tmp_path / "again.json"), "-q")  # fmt: skip
    assert res.exit_code == 0, res.output
    (cert,) = strict_loads((tmp_path / "again.json").read_text())["certificates"]
    assert cert["previous"]["verdict"] == "qualified"
    first = _cert(root, "site-a")
    name = next(c["name"] for c in first["criteria"] if c["kind"] == "stability")
    assert cert["previous"]["criteria"][name]["value"] == next(
        c["value"] for c in first["criteria"] if c["name"] == name
    )
    with open_store(f"sqlite:///{root / 'h.sqlite'}") as store:
        quals = store.qualifications("Siemens-Skyra-QA_0001")
        assert len(quals) == 2 and quals[0]["certificate"]["verdict"] == "qualified"
        assert store.history(
            "Siemens-Skyra-QA_0001"
        ).empty  # qualifications never enter the QC control charts


def test_two_scanners_in_one_submission_get_two_certificates(tmp_path: Path):
    subs = write_submissions(tmp_path / "s")
    both = tmp_path / "both"
    shutil.copytree(subs["site-a"], both / "a")
    shutil.copytree(subs["site-b"], both / "b")
    res = _qualify(str(both), "--profile", PROFILE, "-o", str(tmp_path / "out"), "--no-store", "--json",
                   str(tmp_path / "both.json"), "-q")  # fmt: skip
    assert res.exit_code == 1, res.output  # site b is not qualified
    certs = strict_loads((tmp_path / "both.json").read_text())["certificates"]
    assert [c["verdict"] for c in certs] == ["not qualified", "qualified"]  # GE, Siemens (sorted by key)
    uids = [set(c["provenance"]["input_uids"]) for c in certs]
    assert uids[0] and uids[1] and not uids[0] & uids[1]
    for cert, other in ((certs[0], uids[1]), (certs[1], uids[0])):
        folder = tmp_path / "out" / cert["scanner"]["key"]
        checked = strict_loads((folder / "protocol-check.json").read_text())
        assert {s["series_uid"] for s in checked["series"]}.isdisjoint(other)
        measured = (folder / "stability" / "scans.csv").read_text()
        assert not any(u in measured for u in other)


def test_bad_input_exits_2(tmp_path: Path):
    assert _qualify(str(tmp_path), "--profile", "nope", "-o", str(tmp_path / "o")).exit_code == 2
    bad = tmp_path / "bad.yaml"
    doc = yaml.safe_load(
        Path(__file__).resolve().parents[2].joinpath("profiles", f"{PROFILE}.yaml").read_text()
    )
    doc["stability"]["min_repeats"] = 1
    bad.write_text(yaml.safe_dump(doc))
    res = _qualify(str(tmp_path), "--profile", str(bad), "-o", str(tmp_path / "o"))
    assert res.exit_code == 2 and "stability.min_repeats" in res.output
    empty = tmp_path / "empty"
    empty.mkdir()
    res = _qualify(str(empty), "--profile", PROFILE, "-o", str(tmp_path / "o"), "--no-store")
    assert res.exit_code == 2 and "no DICOM image found" in res.output
    assert _qualify("summary", str(empty), "-o", str(tmp_path / "s")).exit_code == 2
    assert _qualify("list").exit_code == 0


def test_pages_open_in_chromium_and_no_identifier_leaks(
    sites: tuple[Path, Path], chromium: str, tmp_path: Path
):
    root, out = sites
    pages = sorted(out.rglob("certificate.html"))
    _qualify("summary", str(out), "-o", str(root / "summary-chromium"), "-q")
    pages.append(root / "summary-chromium" / "qualification-summary.html")
    for page in pages:
        proc = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'p'}", page.as_uri()],
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert [line for line in proc.stderr.splitlines() if ":CONSOLE" in line] == [], page
        assert "qualif" in proc.stdout.lower()
    written = [p for p in out.rglob("*") if p.is_file() and p.suffix in (".json", ".html", ".csv", ".yaml")]
    assert len(written) > 20
    for p in written:
        text = p.read_text(errors="replace")
        for secret in SECRETS:
            assert secret not in text, f"{secret} in {p}"


def _real_submission(ref: Path, dst: Path) -> Path:
    """One Siemens scanner: the Aera T1 and T2, two T1 repeats (new UIDs) and a localizer given that scanner's
    identity; identifying values planted in every file."""

    def copy(src: Path, to: Path, *, new_uid: bool = False, series_no: int | None = None, like=None) -> None:  # noqa: ANN001
        to.mkdir(parents=True)
        uid = generate_uid()
        for f in sorted(src.iterdir()):
            ds = pydicom.dcmread(f)
            ds.PatientName, ds.PatientID, ds.PatientBirthDate = "Doe^Jane", "PID-4711-SECRET", "19610203"
            if new_uid:
                ds.SeriesInstanceUID, ds.SOPInstanceUID = uid, generate_uid()
                ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            if series_no is not None:
                ds.SeriesNumber = series_no
            for k in (
                "Manufacturer",
                "ManufacturerModelName",
                "DeviceSerialNumber",
                "StationName",
                "MagneticFieldStrength",
                "StudyDate",
                "SeriesDate",
                "AcquisitionDate",
                "StudyInstanceUID",
            ):
                if like is None:
                    break
                if k in like:
                    setattr(ds, k, like.get(k))
                elif k in ds:
                    delattr(ds, k)
            ds.save_as(to / f.name)

    acr = ref / "hazen" / "acr"
    t1 = pydicom.dcmread(sorted((acr / "Siemens_Aera_1.5T_T1").iterdir())[0])
    copy(acr / "Siemens_Aera_1.5T_T1", dst / "t1")
    copy(acr / "Siemens_Aera_1.5T_T2", dst / "t2")
    copy(acr / "Siemens_Aera_1.5T_T1", dst / "t1-repeat-1", new_uid=True, series_no=101)
    copy(acr / "Siemens_Aera_1.5T_T1", dst / "t1-repeat-2", new_uid=True, series_no=102)
    copy(acr / "GE_Signa_1.5T_Sagittal_Localizer", dst / "localizer", new_uid=True, like=t1)
    return dst


def test_real_acr_submission_equals_qc_run_and_follows_the_profile(reference_data: Path, tmp_path: Path):
    sub = _real_submission(reference_data, tmp_path / "submission")
    res = _qualify(str(sub), "--profile", "acr-mri-qualification", "-o", str(tmp_path / "q"), "--no-store",
                   "--json", str(tmp_path / "q.json"), "-q")  # fmt: skip
    assert res.exit_code == 0, res.output
    (cert,) = strict_loads((tmp_path / "q.json").read_text())["certificates"]
    assert cert["verdict"] in ("qualified", "qualified with findings")
    for role in ("t1", "t2"):
        qc = runner.invoke(app, ["qc", "run", str(sub), "--series", role, "-o", str(tmp_path / f"qc-{role}"),
                                 "--no-store", "-q"])  # fmt: skip
        session = strict_loads((tmp_path / f"qc-{role}" / "qc-result.json").read_text())
        # the repeats are pixel-identical copies: their subtraction SNR cannot be measured (zero noise), so the
        # session is incomplete (exit 1), never a pass; nothing else is missing and nothing fails
        assert qc.exit_code == (1 if session["problems"] else 0), qc.output
        assert {p["name"].split(" ")[0] for p in session["problems"]} <= {"snr_subtraction_7"}, session[
            "problems"
        ]
        assert session["verdict"] == ("incomplete" if session["problems"] else "pass")
        ours = {c["name"].split(": ", 1)[1]: c["value"] for c in cert["criteria"]
                if c["kind"] == "phantom" and c["name"].startswith(f"acr-mri-large {role}:")}  # fmt: skip
        theirs = {m["name"]: m["value"] for m in session["measurements"] if m.get("limit")}
        assert ours and ours == theirs, role  # the same engine, the same numbers
    # a stricter profile flips the verdict: PIU >= 99 %
    doc = yaml.safe_load(
        (Path(__file__).resolve().parents[2] / "profiles" / "acr-mri-qualification.yaml").read_text()
    )
    doc["phantom_tests"][0]["limits"] = {"piu": {"low": 99.0, "unit": "%", "source": "test"}}
    strict = tmp_path / "strict.yaml"
    strict.write_text(yaml.safe_dump(doc))
    res = _qualify(str(sub), "--profile", str(strict), "-o", str(tmp_path / "q2"), "--no-store", "--json",
                   str(tmp_path / "q2.json"), "-q")  # fmt: skip
    assert res.exit_code == 1, res.output
    (cert2,) = strict_loads((tmp_path / "q2.json").read_text())["certificates"]
    piu = next(c for c in cert2["criteria"] if c["name"] == "acr-mri-large t1: piu")
    assert cert2["verdict"] == "not qualified" and piu["verdict"] == "fail" and piu["limit"] == ">= 99 %"
    assert (
        "Doe^Jane" not in json.dumps(cert2)
        and "PID-4711-SECRET"
        not in (tmp_path / "q2").joinpath(cert2["scanner"]["key"], "certificate.html").read_text()
    )


def test_sites_are_the_documented_ones():
    assert [s.name for s in SITES] == list(PLANTED)


def test_a_profile_asking_for_relaxometry(tmp_path: Path):
    """The relaxometry analyses through a profile: T1 of plate 5 within 15 % of the reference, sphere by sphere."""
    from qckit.phantoms.load import load_phantom
    from qckit.synth.relaxometry import RelaxScan, write_relaxometry

    arr = load_phantom("ismrm-nist-system").phantom.sphere_array(5)
    write_relaxometry(
        tmp_path / "sub", arr, arr.reference("T1", 1.5).values_ms[:14], "T1", scan=RelaxScan(seed=1)
    )
    profile = {"schema_version": 1, "name": "relaxometry-qualification", "title": "T1 accuracy",
               "protocol": "ismrm-nist-relaxometry", "completeness": {"entries": ["ir"]},
               "phantom_tests": [{"phantom": "ismrm-nist-system", "protocol": "ismrm-nist-relaxometry",
                                  "series": "ir", "measurements": ["t1_plate5_sphere0[1-6]"]}]}  # fmt: skip
    path = tmp_path / "relax.yaml"
    path.write_text(yaml.safe_dump(profile))
    res = _qualify(str(tmp_path / "sub"), "--profile", str(path), "-o", str(tmp_path / "o"), "--no-store",
                   "--json", str(tmp_path / "r.json"), "-q")  # fmt: skip
    assert res.exit_code == 0, res.output
    (cert,) = strict_loads((tmp_path / "r.json").read_text())["certificates"]
    spheres = [c for c in cert["criteria"] if c["kind"] == "phantom"]
    assert [c["name"].rsplit("_", 1)[1] for c in spheres] == [f"sphere0{i}" for i in range(1, 7)]
    for c in spheres:
        assert c["verdict"] == "pass" and c["unit"] == "ms" and c["limit"] and c["value"] > 0, c
    assert cert["verdict"] == "qualified"


def test_committed_profile_schema_is_up_to_date():
    from qckit.qualification.profile import json_schema_text

    committed = Path(__file__).resolve().parents[2] / "profiles" / "profile.schema.json"
    assert committed.read_text() == json_schema_text(), (
        "run: qckit qualify schema -o profiles/profile.schema.json"
    )


def test_repeatability_uses_one_session_and_other_days_are_intermediate_precision(tmp_path: Path):
    """Site A's three same-day phantom repeats, plus its first repeat re-exported as scanned 8 days later:
    repeatability is decided on the three same-day repeats; the other day is reported beside it as intermediate
    precision (issue "Values a physicist can trust", item 5)."""
    import shutil

    import pydicom
    from pydicom.uid import generate_uid

    from qckit.workflows.qualify import same_session_repeats

    folder = write_submissions(tmp_path / "subs", repeats=3)["site-a"]
    reps = sorted(p for p in (folder / "phantom").rglob("rep*") if p.is_dir())
    later = reps[0].parent / "later"
    shutil.copytree(reps[0], later)
    series = generate_uid()
    for f in later.rglob("*.dcm"):
        ds = pydicom.dcmread(f)
        ds.StudyDate = ds.SeriesDate = "20260113"
        ds.SeriesInstanceUID, ds.StudyInstanceUID = series, generate_uid()
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.save_as(f)
    res = _qualify(str(folder), "--profile", PROFILE, "-o", str(tmp_path / "q"), "--no-store",
                   "--json", str(tmp_path / "q.json"))  # fmt: skip
    assert res.exit_code in (0, 1), res.output
    (cert,) = strict_loads((tmp_path / "q.json").read_text())["certificates"]
    stab = next(c for c in cert["criteria"] if c["kind"] == "stability")
    assert "over 3 repeats" in stab["detail"] and "1 repeat(s) from other days left out" in stab["detail"], (
        stab
    )
    ip = cert["submission"]["stability"]["intermediate_precision"]
    assert ip["repeats"] == 4 and len(ip["days"]) == 2 and ip["n_features"] > 0
    rows = [{"StudyDate": d, "series_uid": str(i)} for i, d in enumerate(["20260105"] * 3 + ["20260113"])]
    same, other = same_session_repeats(rows)
    assert [r["series_uid"] for r in same] == ["0", "1", "2"] and [r["series_uid"] for r in other] == ["3"]
    assert same_session_repeats(rows[:3]) == (rows[:3], [])


def test_a_profile_pattern_or_limit_matching_nothing_is_missing_and_infinite_limits_are_refused(
    tmp_path: Path,
):
    """Issue "Reliability round 2" item 12: a `measurements:` pattern that matched nothing dropped its tests
    silently, and .inf / .nan limits were accepted."""
    from qckit.phantoms.load import load_phantom
    from qckit.synth.relaxometry import RelaxScan, write_relaxometry

    arr = load_phantom("ismrm-nist-system").phantom.sphere_array(5)
    write_relaxometry(
        tmp_path / "sub", arr, arr.reference("T1", 1.5).values_ms[:14], "T1", scan=RelaxScan(seed=1)
    )
    test = {"phantom": "ismrm-nist-system", "protocol": "ismrm-nist-relaxometry", "series": "ir",
            "measurements": ["t1_plate5_sphere01", "t1_plate9_*"],
            "limits": {"t1_platee5_sphere02": {"low": 1, "high": 2}}}  # fmt: skip
    profile = {"schema_version": 1, "name": "p", "title": "T1", "protocol": "ismrm-nist-relaxometry",
               "completeness": {"entries": ["ir"]}, "phantom_tests": [test]}  # fmt: skip
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(profile))
    res = _qualify(str(tmp_path / "sub"), "--profile", str(path), "-o", str(tmp_path / "o"), "--no-store",
                   "--json", str(tmp_path / "r.json"), "-q")  # fmt: skip
    assert res.exit_code == 1, res.output
    (cert,) = strict_loads((tmp_path / "r.json").read_text())["certificates"]
    missing = {
        c["name"].split(": ", 1)[1]: c["detail"] for c in cert["criteria"] if c["verdict"] == "incomplete"
    }
    assert "matches no measurement" in missing["t1_plate9_*"]
    assert "misspelt" in missing["limit t1_platee5_sphere02"]
    assert cert["verdict"] == "incomplete"
    test["limits"] = {"t1_plate5_sphere01": {"low": 0, "high": float("inf")}}
    path.write_text(yaml.safe_dump(profile))
    res = _qualify(str(tmp_path / "sub"), "--profile", str(path), "-o", str(tmp_path / "o2"), "--no-store")
    assert res.exit_code == 2 and "finite" in res.output, res.output
