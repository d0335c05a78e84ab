"""The demo pipeline behind `qckit demo`: every stage on embedded, seeded synthetic data.

Stages so far: (1) a multi-vendor synthetic QC session is written as DICOM and indexed.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from qckit.dicom import ScanResult, scan, write_json, write_table
from qckit.testing.dicom_gen import make_demo_dataset


@dataclass
class DemoSummary:
    scan: ScanResult
    outputs: dict[str, Path] = field(default_factory=dict)


def run_demo(
    out_dir: Path,
    *,
    data_dir: Path | None = None,
    seed: int = 20260105,
    progress: Callable[[int, int], None] | None = None,
) -> DemoSummary:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="qckit-demo-") as tmp:
        root = Path(data_dir) if data_dir is not None else Path(tmp) / "dicom"
        make_demo_dataset(root, seed=seed)
        result = scan(root, progress=progress)
        summary = DemoSummary(scan=result)
        summary.outputs["index (JSON)"] = write_json(result, out_dir / "index.json")
        summary.outputs["index (CSV)"] = write_table(result, out_dir / "index.csv")
    return summary
