"""Files written by a QC session: qc-result.json, qc-measurements.csv (the HTML report is `qckit.report`)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from qckit.core.jsonio import atomic_write_text, write_json
from qckit.core.provenance import Provenance
from qckit.core.session import QCSessionResult

CSV_COLUMNS = ["name", "value", "unit", "limit", "passed", "verdict", "slice", "role", "method", "series_uid"]


def measurement_rows(s: QCSessionResult) -> list[dict[str, Any]]:
    """The rows of qc-measurements.csv (one per measurement, `CSV_COLUMNS`)."""
    return [{k: m.to_dict().get(k) for k in CSV_COLUMNS} for m in s.measurements]


def write_session_outputs(s: QCSessionResult, provenance: Provenance, out_dir: str | Path) -> dict[str, Path]:
    out = Path(out_dir)
    json_path = write_json(out / "qc-result.json", {**s.to_dict(), "provenance": provenance.to_dict()})
    buf = io.StringIO()
    w = csv.DictWriter(buf, CSV_COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows({k: "" if v is None else v for k, v in row.items()} for row in measurement_rows(s))
    csv_path = atomic_write_text(out / "qc-measurements.csv", buf.getvalue())
    return {"json": json_path, "csv": csv_path}
