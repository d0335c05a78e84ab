"""Files written by a QC session: qc-result.json, qc-measurements.csv (and the HTML report, see qckit.report)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from qckit.qc.session import QCSession, measurements_frame
from qckit.report.provenance import Provenance


def _clean(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, float) and obj != obj:
        return None
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        return obj.item()
    return obj


def write_session_outputs(s: QCSession, provenance: Provenance, out_dir: str | Path) -> dict[str, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = {**s.to_dict(), "provenance": provenance.to_dict()}
    json_path = out / "qc-result.json"
    json_path.write_text(json.dumps(_clean(data), indent=2, default=str, allow_nan=False), encoding="utf-8")
    csv_path = out / "qc-measurements.csv"
    measurements_frame(s).to_csv(csv_path, index=False)
    return {"json": json_path, "csv": csv_path}
