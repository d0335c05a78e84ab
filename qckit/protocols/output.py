"""Write protocol-check results: JSON (with provenance) and a flat CSV of every rule of every series."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qckit.core.jsonio import write_json
from qckit.core.provenance import Provenance
from qckit.core.tables import write_table
from qckit.protocols.check import ROW_FIELDS, CheckResult


def check_json(result: CheckResult, provenance: Provenance) -> dict[str, Any]:
    data = result.to_dict()
    data["provenance"] = provenance.to_dict()
    return data


def write_check_json(result: CheckResult, provenance: Provenance, path: str | Path) -> Path:
    return write_json(path, check_json(result, provenance))


def write_check_csv(result: CheckResult, path: str | Path) -> Path:
    """One line per (series, rule); unmatched series get one line with empty rule columns."""
    import pandas as pd

    rule_cols = ["keyword", "expected", "observed", "unit", "level", "passed"]
    rows = []
    for s in result.series:
        base = [s.row.get(k) for k in ROW_FIELDS] + [s.protocol_entry, s.status]
        if not s.rules:
            rows.append(base + [""] * len(rule_cols))
        for r in s.rules:
            rows.append(base + [r.keyword, r.expected, r.observed, r.unit or "", r.level, r.passed])
    return write_table(
        pd.DataFrame(rows, columns=[*ROW_FIELDS, "protocol_entry", "status", *rule_cols]), path
    )
