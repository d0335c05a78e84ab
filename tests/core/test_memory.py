"""The memory budget reads the container (cgroup v1 and v2) limit, not only the machine's free pages."""

from __future__ import annotations

from pathlib import Path

from qckit.core.memory import HEADROOM, memory_budget


def _files(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


def test_cgroup_v2_limit_bounds_the_budget(tmp_path: Path):
    _files(tmp_path, {"proc/cgroup": "0::/box/job\n", "proc/meminfo": "MemTotal: 100 kB\nMemAvailable: 20971520 kB\n",
                      "cg/box/memory.max": str(12 << 30), "cg/box/memory.current": str(2 << 30),
                      "cg/box/job/memory.max": "max", "cg/box/job/memory.current": str(1 << 30)})  # fmt: skip
    b = memory_budget(tmp_path / "cg", tmp_path / "proc/cgroup", tmp_path / "proc/meminfo")
    assert b.free == 10 << 30 and b.usable == int((10 << 30) * HEADROOM) and "cgroup" in b.source


def test_cgroup_v1_counts_inactive_file_cache_as_free(tmp_path: Path):
    _files(tmp_path, {"proc/cgroup": "4:memory:/docker/abc\n", "proc/meminfo": "MemAvailable: 20971520 kB\n",
                      "cg/memory/memory.limit_in_bytes": str(4 << 30), "cg/memory/memory.usage_in_bytes": str(3 << 30),
                      "cg/memory/memory.stat": f"cache 5\ntotal_inactive_file {1 << 30}\n"})  # fmt: skip
    b = memory_budget(tmp_path / "cg", tmp_path / "proc/cgroup", tmp_path / "proc/meminfo")
    assert b.free == 2 << 30 and "cgroup" in b.source


def test_without_a_limit_the_machine_bounds_it(tmp_path: Path):
    _files(tmp_path, {"proc/cgroup": "4:memory:/\n", "proc/meminfo": "MemAvailable: 1048576 kB\n",
                      "cg/memory/memory.limit_in_bytes": "9223372036854771712",
                      "cg/memory/memory.usage_in_bytes": "5"})  # fmt: skip
    b = memory_budget(tmp_path / "cg", tmp_path / "proc/cgroup", tmp_path / "proc/meminfo")
    assert b.free == 1 << 30 and "MemAvailable" in b.source


def test_an_image_beyond_the_budget_is_refused_before_loading_saying_why(tmp_path: Path, monkeypatch):
    import numpy as np
    import SimpleITK as sitk
    from typer.testing import CliRunner

    import qckit.normalize.image as image
    from qckit.cli import app
    from qckit.core.memory import MemoryBudget

    monkeypatch.delenv("QCKIT_MAX_VOXELS", raising=False)
    monkeypatch.setattr(
        image, "memory_budget", lambda: MemoryBudget(40 * 1000, 50_000, "the container (cgroup) memory limit")
    )
    p = tmp_path / "i.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((20, 20, 20), np.float32)), str(p))
    res = CliRunner().invoke(app, ["normalize", str(p), "-m", "zscore", "-o", str(tmp_path / "o")])
    assert res.exit_code == 2 and "exceed the limit of 1,000" in res.output and "cgroup" in res.output
    assert "nothing was loaded" in res.output
