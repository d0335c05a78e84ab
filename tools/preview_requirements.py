"""Print qckit's requirements for the Python 3.13 preview (`make preview-py313`): the project's own, with the
pins that only neuroHarmonize's `numpy<2` forces replaced by what 3.13 has (numpy 2.x below 2.4: numpy 2.4+
breaks neuroHarmonize's reference-batch path, `int()` of a one-element array). neuroHarmonize and neuroCombat are
installed afterwards without their dependencies (their pin, not their code, is what blocks 3.13)."""

import sys
import tomllib
from pathlib import Path

PINNED_BY_NEUROHARMONIZE = ("numpy", "pandas", "pyarrow", "neuroHarmonize", "pingouin", "qckit")
PREVIEW = ["numpy>=2,<2.4", "pandas>=2.2,<3", "pyarrow>=15"]

project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
deps = (
    project["dependencies"]
    + project["optional-dependencies"]["dev"]
    + project["optional-dependencies"]["docs"]
)
keep = [d for d in deps if not d.replace(" ", "").startswith(PINNED_BY_NEUROHARMONIZE)]
sys.stdout.write("\n".join(keep + PREVIEW) + "\n")
