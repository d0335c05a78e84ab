"""The CLI starts fast because sub-commands import their dependencies when they run (measured in
benchmarks/bench_startup.py; here only what is imported is checked, never a time)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

HEAVY = ("sklearn", "pandas", "scipy", "SimpleITK", "radiomics", "neuroHarmonize", "plotly", "sqlalchemy", "dask",
         "pydantic", "pydicom", "numpy")  # fmt: skip
REPO = Path(__file__).resolve().parents[2]


def test_importing_the_cli_imports_no_heavy_dependency():
    code = "import sys, qckit.cli; print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    loaded = set(
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.split()
    )
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_the_version_is_read_without_importlib_metadata():
    """The version is a constant in qckit/__init__.py that the package metadata is built from (tool.hatch.version):
    they agree, and finding it costs no importlib.metadata import (0.024 s of every command)."""
    from importlib.metadata import version

    import qckit

    assert qckit.__version__ == version("qckit")
    code = "import sys, qckit.cli; print('importlib.metadata' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_cli_constants_match_the_library():
    from qckit.cli.phantom import N_PRESET_SCANNERS
    from qckit.cli.qc import DEFAULT_RULES
    from qckit.history.spc import DEFAULT_RULES as SPC_DEFAULT
    from qckit.synth.phantom_scanner import PRESET_SCANNERS

    assert DEFAULT_RULES == ",".join(SPC_DEFAULT) and N_PRESET_SCANNERS == len(PRESET_SCANNERS)


def test_one_json_writer():
    """JSON files are written only through qckit.core.jsonio (one NaN policy); the few json.dumps left make
    digests, database cells or schema text, never an output file."""
    allowed = {"core/jsonio.py", "core/tables.py", "features/runner.py", "dicom/index.py", "history/store.py", "phantoms/load.py",
               "protocols/load.py", "qualification/profile.py", "qualification/signing.py"}  # fmt: skip
    offenders = []
    for path in (REPO / "qckit").rglob("*.py"):
        rel = path.relative_to(REPO / "qckit").as_posix()
        text = path.read_text()
        if re.search(r"json\.dump\(", text) or ("json.dumps(" in text and rel not in allowed):
            offenders.append(rel)
    assert not offenders


def test_a_command_runs_through_an_app_of_that_command_alone_with_the_same_output(tmp_path: Path):
    """`main` hands Typer only the command the arguments name (building the Click commands of the whole tree costs
    every run about 15 ms); help, usage errors, root options, deprecated spellings and exit codes are the same as
    the whole app's, and no command, an unknown one or shell completion get the whole app."""
    from typer.testing import CliRunner

    from qckit.cli import _one_command_app, app

    runner = CliRunner()
    cases = [["qc", "--help"], ["qc", "run", "--help"], ["qc", "run"], ["qc", "nosuch"], ["nosuch"], ["--version"],
             ["-v", "qc", "run", str(tmp_path / "none"), "--no-store"], ["scan", "--help"], ["phantom", "list"],
             ["qc", "run", str(tmp_path / "none"), "--output", str(tmp_path / "o")], ["protocol", "list", "-q"]]  # fmt: skip
    for args in cases:
        one = _one_command_app(args)
        assert (one is app) == (args[0] in ("nosuch", "--version")), args
        a, b = runner.invoke(app, args), runner.invoke(one, args)
        assert (a.exit_code, a.output) == (b.exit_code, b.output), args
    assert len(_one_command_app(["qc", "run", "x"]).registered_groups) == 1
    assert _one_command_app([]) is app and _one_command_app(["--install-completion"]) is app


def test_main_freezes_the_heap_before_the_interpreter_exits(monkeypatch):
    """After the command (also when it exits through SystemExit) `main` freezes the objects it made, so the
    interpreter's last collection does not walk them (45-50 ms of a 0.7 s `qc run`); a whole run through the
    console script still ends with its files written and its output flushed (the subprocess tests)."""
    import gc

    import pytest

    from qckit import cli

    frozen, thresholds = [], []
    monkeypatch.setattr(gc, "freeze", lambda: frozen.append(True))
    # this test process keeps its own collector threshold
    monkeypatch.setattr(gc, "set_threshold", lambda *t: thresholds.append(t))
    monkeypatch.setattr(sys, "argv", ["qckit", "--version"])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    assert exc.value.code == 0 and frozen == [True] and thresholds[0][0] == 50_000


def test_the_collector_does_not_walk_what_the_imports_make_hundreds_of_times():
    """After `main` has set the collector's threshold, importing what a `qc run` imports (the workflow, the MR
    analyses, SciPy, pydantic, pydicom) starts a handful of collections, not the ~200 of CPython's threshold (70 ms
    of a 1.1 s run, benchmarks/README.md); the collector still runs (a cycle made afterwards is freed)."""
    code = """
import gc, sys, weakref
from qckit.cli import main
sys.argv = ["qckit", "--version"]
try:
    main()
except SystemExit:
    pass
gc.unfreeze()
runs = []
gc.callbacks.append(lambda phase, info: phase == "start" and runs.append(info["generation"]))
import qckit.workflows.qc_run, qckit.analyses.mr
class Node:
    pass
a, b = Node(), Node()
a.other, b.other = b, a
alive = weakref.ref(a)
del a, b
junk = [[] for _ in range(60_000)]
print(len(runs), gc.get_threshold()[0], alive() is None)
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    out = res.stdout.strip().splitlines()[-1].split()  # after the version line
    runs, threshold, freed = int(out[0]), int(out[1]), out[2] == "True"
    assert threshold >= 50_000 and freed, out
    assert runs <= 10, f"{runs} collections while importing"


def test_the_diffusion_workflow_imports_scipy_pydantic_and_pydicom_only_when_it_runs():
    """`qckit phantom diffusion` imports SciPy and pydantic (0.3-0.5 s) while a forked process imports pydicom and
    reads the folder (`qckit.workflows.diffusion.run_diffusion`): the workflow module itself must import none of
    them, or the two halves run one after the other."""
    code = "import sys, qckit.workflows.diffusion; print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    loaded = set(
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.split()
    )
    assert "numpy" in loaded
    heavy = {"scipy", "pydantic", "yaml", "pydicom"}
    assert not loaded & heavy, sorted(loaded & heavy)


def test_the_command_imports_pydicom_without_its_unused_optional_packages(tmp_path):
    """`qckit.core.imports`: while pydicom is imported in the command's process, `requests` (its test-data
    downloader) and `PIL.ImageCms` (ICC profiles) are not loaded (45 ms); pydicom reads and decodes images as
    before, and both load as usual when imported afterwards. A library caller's pydicom loads them as pydicom
    asks (the finder is the command's)."""
    import importlib.util

    code = """
import sys
path = sys.argv[1]
from qckit.cli import main
sys.argv = ["qckit", "--version"]
try:
    main()
except SystemExit:
    pass
import numpy as np, pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian
skipped = [m for m in ("requests", "PIL.ImageCms") if m in sys.modules]
ds = Dataset(); ds.file_meta = FileMetaDataset(); ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
ds.Rows, ds.Columns, ds.BitsAllocated, ds.BitsStored, ds.PixelRepresentation = 2, 2, 16, 16, 0
ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
ds.PixelData = np.arange(4, dtype="<u2").tobytes()
ds.save_as(path, implicit_vr=False, little_endian=True)
assert pydicom.dcmread(path, force=True).pixel_array.tolist() == [[0, 1], [2, 3]]
import PIL.ImageCms
print("loaded:", skipped, "later:", "PIL.ImageCms" in sys.modules)
"""
    run = [sys.executable, "-c", code, str(tmp_path / "a.dcm")]
    out = subprocess.run(run, capture_output=True, text=True, check=True).stdout
    assert "loaded: [] later: True" in out, out
    if importlib.util.find_spec("requests") is not None:  # without the command, pydicom loads it
        lib = "import sys, pydicom; print('requests' in sys.modules)"
        assert (
            subprocess.run([sys.executable, "-c", lib], capture_output=True, text=True).stdout.strip()
            == "True"
        )
