"""Files written by a QC session: qc-result.json, qc-measurements.csv (the HTML report is `qckit.report`)."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from qckit.core.jsonio import atomic_write_text, write_json
from qckit.core.provenance import Provenance
from qckit.core.session import QCSessionResult

CSV_COLUMNS = ["name", "value", "unit", "limit", "passed", "verdict", "slice", "role", "method", "series_uid"]


def measurements_frame(s: QCSessionResult) -> pd.DataFrame:
    rows = [m.to_dict() for m in s.measurements]
    return pd.DataFrame(rows, columns=CSV_COLUMNS) if rows else pd.DataFrame(columns=CSV_COLUMNS)


def write_session_outputs(s: QCSessionResult, provenance: Provenance, out_dir: str | Path) -> dict[str, Path]:
    out = Path(out_dir)
    json_path = write_json(out / "qc-result.json", {**s.to_dict(), "provenance": provenance.to_dict()})
    buf = io.StringIO()
    measurements_frame(s).to_csv(buf, index=False)
    csv_path = atomic_write_text(out / "qc-measurements.csv", buf.getvalue())
    return {"json": json_path, "csv": csv_path}
