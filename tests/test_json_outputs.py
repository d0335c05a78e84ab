"""Every JSON document qckit writes validates against its published schema (qckit/schemas, docs "JSON outputs").

The documents are written by the commands themselves, on small seeded data. QCKIT_WRITE_SCHEMAS=1 drafts a
schema for a document that has none yet (a developer's aid: review the draft before committing it).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from qckit.cli import app
from qckit.core.jsonio import strict_loads
from qckit.phantoms.load import load_phantom
from qckit.schemas import OUTPUTS, load_schema
from qckit.synth.brain import make_cohort
from qckit.synth.dicom import make_demo_dataset
from qckit.synth.relaxometry import RelaxScan, write_relaxometry
from qckit.testing.features import make_feature_table

runner = CliRunner()
EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "params"
# validated where their documents are made: tests/test_demo.py, tests/workflows/test_qualify.py
ELSEWHERE = {
    "demo",
    "qualify-certificate",
    "qualify-summary",
    "acr-summary",
    "qc-sessions",
    "qc-session-record",
    "qualify-verify",
    "qc-annual",
    "qc-export",
    "listen",
    "dashboard",
    "harmonize-scorecard",
    "features-robustness",
    "harmonize-onboard",
}  # features-robustness: tests/features/test_robustness.py; harmonize-onboard: tests/harmonize/test_onboard.py; harmonize-scorecard: tests/harmonize/test_diagnostics.py; listen, dashboard: tests/workflows/test_listen.py; qc-export: tests/workflows/test_quaac.py; qualify-verify: tests/workflows/test_signing.py; qc-annual: tests/workflows/test_annual.py; acr-summary: tests/report/test_acr_reports.py; qc-sessions, qc-session-record: tests/workflows/test_history_hygiene.py


def _run(*args: str, code: int = 0) -> None:
    res = runner.invoke(app, [*args, "-q"])
    assert res.exit_code == code, res.output


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    t = tmp_path_factory.mktemp("outputs")
    docs: dict[str, Path] = {n: t / f"{n}.json" for n in OUTPUTS if n not in ELSEWHERE}
    make_demo_dataset(t / "dicom", rows=64)
    _run("scan", str(t / "dicom"), "--json", str(docs["scan"]))
    _run(
        "protocol",
        "check",
        str(t / "dicom"),
        "-p",
        "acr-mri-large",
        "--json",
        str(docs["protocol-check"]),
        code=1,
    )
    _run(
        "protocol",
        "infer",
        str(t / "dicom"),
        "-o",
        str(t / "site.yaml"),
        "--json",
        str(docs["protocol-infer"]),
    )
    db = str(t / "h.sqlite")
    _run("qc", "simulate", "--db", db, "--weeks", "12", "--json", str(docs["qc-simulate"]))
    key = json.loads(docs["qc-simulate"].read_text())["scanners"][0]
    _run("qc", "scanners", "--db", db, "--json", str(docs["qc-scanners"]))
    res = runner.invoke(app, ["qc", "trend", "--scanner", key, "--db", db, "-o", str(t / "trend"), "--json",
                              str(docs["qc-trend"]), "-q"])  # fmt: skip
    assert res.exit_code in (0, 1), res.output  # 1: the drifting scanner's latest session alarms
    _run("phantom", "synth", "-o", str(t / "ph"), "--scanners", "2", "--repeats", "3", "--json",
         str(docs["phantom-synth"]))  # fmt: skip
    _run("phantom", "reproducibility", str(t / "ph"), "--phantom", "qckit-texture", "-o", str(t / "study"),
         "--json", str(docs["phantom-study"]))  # fmt: skip
    arr = load_phantom("ismrm-nist-system").phantom.sphere_array(5)
    write_relaxometry(t / "relax", arr, arr.reference("T1", 1.5).values_ms[:14], "T1", scan=RelaxScan(seed=1))
    _run(
        "phantom",
        "relaxometry",
        str(t / "relax"),
        "-o",
        str(t / "relax-out"),
        "--json",
        str(docs["relaxometry"]),
    )
    from qckit.synth.diffusion import DwiScan, write_dwi

    write_dwi(t / "dwi", load_phantom("caliber-diffusion").phantom.vials, scan=DwiScan(n_slices=5), repeat=1)
    write_dwi(t / "dwi", load_phantom("caliber-diffusion").phantom.vials, scan=DwiScan(n_slices=5), repeat=2)
    _run("phantom", "diffusion", str(t / "dwi"), "-o", str(t / "dwi-out"), "--json", str(docs["diffusion"]))
    from qckit.synth.epi import EpiScan, render_epi, write_epi_dicom

    scan = EpiScan(n_frames=12, n_slices=3, noise_sd=5.0)
    write_epi_dicom(t / "epi", render_epi(scan)[0], scan)
    _run(
        "phantom",
        "epi-stability",
        str(t / "epi"),
        "-o",
        str(t / "epi-out"),
        "--json",
        str(docs["epi-stability"]),
    )
    _run("qc", "run", str(t / "relax"), "--phantom", "ismrm-nist-system", "-p", "ismrm-nist-relaxometry",
         "--no-store", "-o", str(t / "qc"), "--json", str(docs["qc-session"]))  # fmt: skip
    cohort = make_cohort(t / "cohort", n_per_scanner=2, shape=(24, 32, 32))
    import pandas as pd

    pd.DataFrame(cohort.manifest_rows()).to_csv(t / "manifest.csv", index=False)
    _run("extract", str(t / "manifest.csv"), "--params", str(EXAMPLES / "mr-t1-normalized.yaml"), "-o",
         str(t / "f.parquet"), "--json", str(docs["extract"]))  # fmt: skip
    images = [str(r["image"]) for r in cohort.manifest_rows()[:2]]
    _run("normalize", *images, "-m", "zscore", "-o", str(t / "norm"), "--json", str(docs["normalize"]))
    table, _ = make_feature_table(n_sites=3, n_per_site=25, n_features=8, seed=3)
    table.to_csv(t / "features.csv", index=False)
    _run("harmonize", "fit", str(t / "features.csv"), "-b", "site", "--features", "original_*", "-o", str(t / "model"),
         "--json", str(docs["harmonize-evaluation"]))  # fmt: skip
    _run("harmonize", "apply", str(t / "features.csv"), "--model", str(t / "model"), "-o", str(t / "h.csv"),
         "--json", str(docs["harmonize-apply"]))  # fmt: skip
    _run("classify", str(t / "features.csv"), "-l", "label", "-b", "site", "--features", "original_*", "--folds", "3",
         "--json", str(docs["classify"]))  # fmt: skip
    return docs


def _draft(value: object, depth: int = 0) -> dict:
    """A permissive draft schema of one value (QCKIT_WRITE_SCHEMAS=1 only)."""
    if value is None:
        return {}
    if isinstance(value, bool):
        return {"type": ["boolean", "null"]}
    if isinstance(value, int | float):
        return {"type": ["number", "null"]}
    if isinstance(value, str):
        return {"type": ["string", "null"]}
    if isinstance(value, list):
        items = [v for v in value if v is not None]
        return {"type": "array", **({"items": _draft(items[0], depth + 1)} if items and depth < 4 else {})}
    assert isinstance(value, dict)
    if depth >= 4 or len(value) > 40 or not all(k.replace("_", "").replace(" ", "").isalnum() for k in value):
        return {"type": "object"}
    # only the document's own keys are required: nested records vary (optional keys, roles, echoes)
    return {"type": "object", **({"required": sorted(value)} if depth == 0 else {}),
            "properties": {k: _draft(v, depth + 1) for k, v in value.items()}}  # fmt: skip


@pytest.mark.parametrize("name", [n for n in OUTPUTS if n not in ELSEWHERE])
def test_output_validates_against_its_schema(documents: dict[str, Path], name: str):
    doc = strict_loads(documents[name].read_text(encoding="utf-8"))
    path = Path(__file__).resolve().parents[1] / "qckit" / "schemas" / f"{name}.schema.json"
    if os.environ.get("QCKIT_WRITE_SCHEMAS") and not path.exists():
        draft = {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": name, **_draft(doc)}
        path.write_text(json.dumps(draft, indent=2) + "\n", encoding="utf-8")
    schema = load_schema(name)
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(doc, schema)
    assert schema.get("description"), f"{name}: the schema says what the document is"


def test_a_schema_rejects_a_document_missing_a_key(documents: dict[str, Path]):
    doc = strict_loads(documents["qc-session"].read_text(encoding="utf-8"))
    schema = load_schema("qc-session")
    missing = next(iter(schema["required"]))
    doc.pop(missing)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, schema)


def test_every_schema_file_is_listed():
    here = Path(__file__).resolve().parents[1] / "qckit" / "schemas"
    assert {p.name.removesuffix(".schema.json") for p in here.glob("*.schema.json")} == set(OUTPUTS)


def test_a_real_acr_session_validates_too(reference_data: Path, tmp_path: Path):
    """The qc-session schema was drafted from a relaxometry session; an ACR session must fit it as well."""
    out = tmp_path / "acr.json"
    res = runner.invoke(app, ["qc", "run", str(reference_data / "hazen" / "acr" / "Siemens_Sola_1.5T_T1"), "-o",
                              str(tmp_path / "qc"), "--no-store", "--json", str(out), "-q"])  # fmt: skip
    assert res.exit_code in (0, 1), res.output
    jsonschema.validate(strict_loads(out.read_text(encoding="utf-8")), load_schema("qc-session"))
