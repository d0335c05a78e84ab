"""Sign-off of a qualification certificate (`qckit qualify sign|verify`): the signature block with the content
hash, an immutable copy of the signed revision, and a change after signing making the next revision that names the
signed one (a hand edit, or a re-run of qualify into the same folder)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from qckit.cli import app
from qckit.qualification.signing import content_hash
from qckit.schemas import load_schema

runner = CliRunner()


def _qualify(sub: Path, out: Path) -> Path:
    res = runner.invoke(app, ["qualify", "run", str(sub), "--profile", "ct-radiomics-qualification", "-o", str(out),
                              "-q"])  # fmt: skip
    assert res.exit_code in (0, 1), res.output
    (cert,) = out.glob("*/certificate.json")
    return cert.parent


def test_sign_verify_and_revisions(tmp_path: Path):
    from qckit.synth.catphan import CatphanScan, write_catphan

    write_catphan(tmp_path / "sub" / "a", CatphanScan(matrix=256, pixel_mm=0.9, seed=1), serial="7001")
    d = _qualify(tmp_path / "sub", tmp_path / "out")
    res = runner.invoke(app, ["qualify", "verify", str(d)])
    assert res.exit_code == 1 and "not signed" in res.output
    res = runner.invoke(app, ["qualify", "sign", str(d), "--by", "A. Physicist", "--role", "Medical physicist",
                              "--valid-days", "365", "--json", str(tmp_path / "signed.json")])  # fmt: skip
    assert res.exit_code == 0, res.output
    doc = json.loads((d / "certificate.json").read_text())
    sig = doc["signature"]
    assert (sig["by"], sig["role"], sig["valid_days"], sig["revision"]) == (
        "A. Physicist",
        "Medical physicist",
        365,
        1,
    )
    assert sig["content_sha256"] == content_hash(doc)
    signed_on = dt.date.fromisoformat(sig["signed_at"][:10])
    assert dt.date.fromisoformat(sig["expires"]) == signed_on + dt.timedelta(days=365)
    assert json.loads((d / "certificate-r1.signed.json").read_text()) == doc
    jsonschema.validate(doc, load_schema("qualify-certificate"))
    html = (d / "certificate.html").read_text()
    assert "Sign-off" in html and "A. Physicist" in html and sig["content_sha256"] in html
    res = runner.invoke(app, ["qualify", "verify", str(d), "--json", str(tmp_path / "v.json")])
    assert res.exit_code == 0 and "unchanged" in res.output
    # the images are embedded in the page and covered by the signature (their file's sha256 is in the certificate)
    assert (
        "Images: where the phantom values were measured" in html and (d / doc["outputs"]["images"]).is_file()
    )
    images = (d / doc["outputs"]["images"]).read_bytes()
    (d / doc["outputs"]["images"]).write_bytes(images.replace(b'"figures"', b'"figures" ', 1))
    res = runner.invoke(app, ["qualify", "verify", str(d)])
    assert res.exit_code == 1 and "not the image file the certificate records" in res.output
    (d / doc["outputs"]["images"]).write_bytes(images)
    v = json.loads((tmp_path / "v.json").read_text())
    jsonschema.validate(v, load_schema("qualify-verify"))
    assert v["signed_and_unchanged"] is True
    # signed and unchanged: not signed twice
    again = runner.invoke(app, ["qualify", "sign", str(d), "--by", "B", "--role", "physicist"])
    assert again.exit_code == 2 and "signed already" in again.output
    # a hand edit after signing: verify fails, signing makes revision 2 naming revision 1
    doc["criteria"][0]["detail"] = str(doc["criteria"][0].get("detail") or "") + " (edited)"
    (d / "certificate.json").write_text(json.dumps(doc))
    res = runner.invoke(app, ["qualify", "verify", str(d)])
    assert res.exit_code == 1 and "changed after it was signed" in res.output
    res = runner.invoke(
        app, ["qualify", "sign", str(d), "--by", "B. Physicist", "--role", "Medical physicist"]
    )
    assert res.exit_code == 0, res.output
    doc2 = json.loads((d / "certificate.json").read_text())
    assert doc2["revision"]["number"] == 2 and doc2["signature"]["revision"] == 2
    sup = doc2["revision"]["supersedes"]
    assert (sup["number"], sup["content_sha256"], sup["signed_by"], sup["file"]) == (
        1, sig["content_sha256"], "A. Physicist", "certificate-r1.signed.json")  # fmt: skip
    assert (
        json.loads((d / "certificate-r1.signed.json").read_text())["signature"] == sig
    )  # revision 1 kept as signed
    assert (d / "certificate-r2.signed.json").is_file()
    # a re-run of qualify into the same folder: revision 3, naming the signed revision 2, unsigned
    d3 = _qualify(tmp_path / "sub", tmp_path / "out")
    doc3 = json.loads((d3 / "certificate.json").read_text())
    assert doc3["revision"]["number"] == 3 and doc3["revision"]["supersedes"]["signed_by"] == "B. Physicist"
    assert "signature" not in doc3
    assert json.loads((d / "certificate-r2.signed.json").read_text()) == doc2
    jsonschema.validate(doc3, load_schema("qualify-certificate"))


def test_sign_refuses_what_is_not_a_certificate(tmp_path: Path):
    res = runner.invoke(app, ["qualify", "sign", str(tmp_path), "--by", "A", "--role", "B"])
    assert res.exit_code == 2 and "no certificate.json" in res.output
    (tmp_path / "certificate.json").write_text('{"certificate": "something else"}')
    res = runner.invoke(app, ["qualify", "sign", str(tmp_path), "--by", "A", "--role", "B"])
    assert res.exit_code == 2 and "not a qckit scanner qualification certificate" in res.output
    res = runner.invoke(app, ["qualify", "sign", str(tmp_path), "--by", " ", "--role", "B"])
    assert res.exit_code == 2


def test_signed_certificate_pdf(tmp_path: Path, chromium: str, monkeypatch):  # noqa: ANN001
    """`qualify sign --pdf`: the filed PDF carries the verdict, every criterion's verdict and the signature block."""
    from pypdf import PdfReader

    from qckit.synth.catphan import CatphanScan, write_catphan

    monkeypatch.setenv("QCKIT_CHROMIUM", chromium)
    write_catphan(tmp_path / "sub" / "a", CatphanScan(matrix=256, pixel_mm=0.9, seed=3), serial="7002")
    d = _qualify(tmp_path / "sub", tmp_path / "out")
    res = runner.invoke(app, ["qualify", "sign", str(d), "--by", "A. Physicist", "--role", "Medical physicist",
                              "--valid-days", "30", "--pdf"])  # fmt: skip
    assert res.exit_code == 0, res.output
    doc = json.loads((d / "certificate.json").read_text())
    reader = PdfReader(str(d / "certificate.pdf"))
    flat = " ".join(" ".join(p.extract_text() for p in reader.pages).split())
    assert doc["verdict"].upper() in flat and "A. Physicist" in flat and doc["signature"]["expires"] in flat
    i = flat.find("content sha256")
    assert doc["signature"]["content_sha256"] in flat.replace(" ", ""), flat[i - 200 : i + 300]
    for c in doc["criteria"]:
        assert (c["verdict"].upper() if c["verdict"] != "pass" else "pass") in flat
    assert float(reader.pages[0].mediabox.width) == pytest.approx(595.3, abs=1.5)


def test_review_of_a_criterion_on_a_signed_certificate(tmp_path: Path):
    """A disputed criterion: the reviewed verdict applies and the certificate's verdict follows, the automated one
    stays beside it; on a signed certificate the review makes revision 2 (revision 1 kept as signed); withdrawing
    the review restores the automated verdict."""
    from qckit.synth.catphan import DEFAULT_HU, CatphanScan, write_catphan

    bad = CatphanScan(matrix=256, pixel_mm=0.9, seed=5, hu={**DEFAULT_HU, "teflon": 910.0})
    for i in range(3):
        write_catphan(tmp_path / "sub" / f"a{i}", bad if i == 0 else CatphanScan(matrix=256, pixel_mm=0.9, seed=5 + i,
                      hu={**DEFAULT_HU, "teflon": 910.0}), serial="7003", series_number=3 + i)  # fmt: skip
    d = _qualify(tmp_path / "sub", tmp_path / "out")
    doc = json.loads((d / "certificate.json").read_text())
    assert doc["verdict"] == "not qualified"
    name = next(c["name"] for c in doc["criteria"] if c["verdict"] == "fail")
    assert name == "catphan504 ct: hu_teflon"
    assert (
        runner.invoke(
            app, ["qualify", "sign", str(d), "--by", "A. Physicist", "--role", "physicist"]
        ).exit_code
        == 0
    )
    res = runner.invoke(app, ["qualify", "review", str(d), "--criterion", name, "--verdict", "pass", "--reason",
                              "the insert is a replacement Teflon of a documented -90 HU offset (vendor letter)",
                              "--by", "B. Physicist"])  # fmt: skip
    assert res.exit_code == 0, res.output
    doc2 = json.loads((d / "certificate.json").read_text())
    c = next(c for c in doc2["criteria"] if c["name"] == name)
    assert (c["verdict"], c["automated_verdict"], c["review"]["by"]) == ("pass", "fail", "B. Physicist")
    assert doc2["verdict"] == "qualified" and doc2["revision"]["number"] == 2 and "signature" not in doc2
    assert json.loads((d / "certificate-r1.signed.json").read_text())["verdict"] == "not qualified"
    html = (d / "certificate.html").read_text()
    assert "reviewed by B. Physicist" in html and "automated fail" in html
    res = runner.invoke(app, ["qualify", "review", str(d), "--criterion", name, "--withdraw", "--reason",
                              "letter not applicable to this phantom", "--by", "C. Physicist"])  # fmt: skip
    assert res.exit_code == 0, res.output
    doc3 = json.loads((d / "certificate.json").read_text())
    assert (
        doc3["verdict"] == "not qualified" and len(doc3["reviews"]) == 1 and doc3["reviews"][0]["withdrawn"]
    )
    bad_name = runner.invoke(app, ["qualify", "review", str(d), "--criterion", "nope", "--verdict", "pass",
                                   "--reason", "x", "--by", "y"])  # fmt: skip
    assert bad_name.exit_code == 2 and "has no criterion" in bad_name.output
