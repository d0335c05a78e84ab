"""JSON Schemas (draft 2020-12) of the JSON documents qckit writes (`--json FILE` and the JSON files in an
output folder). Each document's own keys are listed and required; objects may gain keys in later versions
(`additionalProperties` is not closed), so readers should ignore keys they do not know.

The tests write every document and validate it against its schema (tests/test_json_outputs.py).
"""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any

# name -> which commands write it
OUTPUTS: dict[str, str] = {
    "scan": "`qckit scan --json`, `index.json` of `qckit demo`",
    "protocol-check": "`qckit protocol check --json`",
    "protocol-infer": "`qckit protocol infer --json`",
    "qc-session": "`qckit qc run --json` and `qc-result.json` in its output folder",
    "acr-summary": "`acr-summary.json` in `qckit qc run`'s output folder (ACR large phantom sessions)",
    "qc-trend": "`qckit qc trend --json`",
    "qc-scanners": "`qckit qc scanners --json`",
    "qc-simulate": "`qckit qc simulate --json`",
    "qc-sessions": "`qckit qc sessions list --json`",
    "qc-session-record": "`qckit qc sessions show --json`",
    "phantom-synth": "`qckit phantom synth --json` and its `ground_truth.json`",
    "phantom-study": "`qckit phantom repeatability|reproducibility --json` and `summary.json` in the output folder",
    "relaxometry": "`qckit phantom relaxometry --json` and `relaxometry.json` in the output folder",
    "diffusion": "`qckit phantom diffusion --json` and `diffusion.json` in the output folder",
    "epi-stability": "`qckit phantom epi-stability --json` and `epi-stability.json` in the output folder",
    "extract": "`qckit extract --json`",
    "normalize": "`qckit normalize --json`",
    "features-robustness": "`qckit features robustness --json` and `robustness.json` in its output folder",
    "harmonize-evaluation": "`qckit harmonize fit --json` and `qckit harmonize evaluate --json`",
    "harmonize-apply": "`qckit harmonize apply --json`",
    "harmonize-onboard": "`qckit harmonize onboard --json`",
    "harmonize-scorecard": "`qckit harmonize scorecard --json` and `scorecard.json` in its output folder",
    "classify": "`qckit classify --json`",
    "demo": "`qckit demo --json`",
    "qualify-certificate": "`certificate.json` of each scanner in `qckit qualify`'s output, and each item of `qckit qualify --json`",
    "qualify-summary": "`qckit qualify summary --json` and its `qualification-summary.json`",
    "qualify-verify": "`qckit qualify verify --json`",
    "qc-annual": "`annual-report.json` of `qckit qc annual` and its --json",
    "qc-export": "`qckit qc export --json`",
    "listen": "`qckit listen --json` (with --check: the configuration only)",
    "dashboard": "`qckit dashboard --json` and `dashboard.json` in its output folder",
}


def load_schema(name: str) -> dict[str, Any]:
    """The JSON Schema of output `name` (one of `OUTPUTS`)."""
    if name not in OUTPUTS:
        raise KeyError(f"no output schema {name!r}; known: {', '.join(OUTPUTS)}")
    return json.loads(files(__name__).joinpath(f"{name}.schema.json").read_text(encoding="utf-8"))


def output_schemas() -> dict[str, tuple[dict[str, Any], str]]:
    """Every output schema with the commands that write it: {name: (schema, written by)}."""
    return {name: (load_schema(name), where) for name, where in OUTPUTS.items()}
