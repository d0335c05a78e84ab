"""Golden values for qckit's nested ComBat from an independent implementation: combatlearn's `NestedComBat`
(Rocchi, MIT; method "fortin" = neuroCombat's model, optimize_order=True = OPNested, Horng et al. 2022).

Runs in its own venv (`make oracles`: .venv-oracle with combatlearn==2.3.0, no qckit) and writes, into
tests/harmonize/golden/: the seeded input cohort (nested_input.csv) and the harmonization order combatlearn's
OPNested search chose (nested_combatlearn.json). The cohort is generated here with NumPy only, so the oracle shares
no code with qckit.

Only the order is a golden value: combatlearn's own ComBat engine does not reproduce R neuroCombat (on the R test
data of ComBatHarmonization its parametric output differs from R's by up to 2.03, unadjusted, and 0.70, with the
covariate, on values of about 11; neuroHarmonize, qckit's engine, agrees with R), so its harmonized values are not
a reference. qckit's steps are compared with neuroCombat itself in tests/harmonize/test_nested.py.

Cohort: 3 sites x 2 scanner models, crossed (every site has both, 30 rows per cell), 8 features with additive
and multiplicative site and scanner effects, a binary label effect on the first 3 features and an age effect.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

OUT = Path(__file__).resolve().parents[2] / "tests" / "harmonize" / "golden"


def cohort(seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    p, rows = 8, []
    site_loc, site_scale = rng.normal(0, 1.0, (3, p)), np.exp(rng.uniform(-0.4, 0.4, (3, p)))
    scan_loc, scan_scale = rng.normal(0, 0.8, (2, p)), np.exp(rng.uniform(-0.3, 0.3, (2, p)))
    for s in range(3):
        for m in range(2):
            n = 30
            label, age = rng.integers(0, 2, n), rng.uniform(30, 80, n)
            e = rng.normal(0, 1, (n, p))
            x = 10 + 0.03 * age[:, None] + np.where(np.arange(p) < 3, 1.0, 0.0) * label[:, None]
            x = x + site_loc[s] + scan_loc[m] + e * site_scale[s] * scan_scale[m]
            frame = pd.DataFrame(x, columns=[f"original_feature_{j}" for j in range(p)])
            rows.append(frame.assign(site=f"site{s}", scanner=f"model{m}", label=label, age=age))
    out = pd.concat(rows, ignore_index=True)
    out.insert(0, "subject_id", [f"p{i:03d}" for i in range(len(out))])
    return out


def main() -> int:
    import combatlearn
    from combatlearn import NestedComBat

    frame = cohort()
    feats = [c for c in frame.columns if c.startswith("original_")]
    model = NestedComBat(
        batch=frame[["site", "scanner"]],
        discrete_covariates=frame[["label"]],
        continuous_covariates=frame[["age"]],
        method="fortin",
        optimize_order=True,
    )
    harmonized = model.fit_transform(frame[feats])
    OUT.mkdir(parents=True, exist_ok=True)
    del harmonized
    frame.to_csv(OUT / "nested_input.csv", index=False)
    (OUT / "nested_combatlearn.json").write_text(
        json.dumps(
            {
                "order": list(model.order_),
                "combatlearn": combatlearn.__version__,
                "method": "fortin",
                "optimize_order": True,
            },
            indent=1,
        )
        + "\n"
    )
    print("order", model.order_)
    return 0


if __name__ == "__main__":
    sys.exit(main())
