"""Longitudinal ComBat (qckit.harmonize.longitudinal): known answers on synthetic longitudinal data (subjects
scanned repeatedly, scanners changed mid-study), the subject intercepts against statsmodels' BLUPs, the model
folder and the commands."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from qckit.cli import app
from qckit.core.errors import HarmonizationError, ModelFileError
from qckit.harmonize.longitudinal import LongitudinalComBat, load_model, save_model

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
runner = CliRunner()
SLOPE = 0.4


def _study(seed: int = 0, n_subjects: int = 60, p: int = 6) -> tuple[pd.DataFrame, list[str], pd.DataFrame]:
    """Subjects with 4 visits (time 0-3). Group 1 is scanned on A, then on B from visit 2 (an upgrade); group 2
    on C, then on A. Truth: y = 10 + 0.4 t + eta_i (SD 1.5) + e (SD 0.5); scanner B adds +1.0 and doubles e's SD;
    scanner C adds -0.7. Returns the table, the features and the batch-free truth."""
    rng = np.random.default_rng(seed)
    feats = [f"original_feature_{j}" for j in range(p)]
    rows, truth = [], []
    for i in range(n_subjects):
        eta = rng.normal(0, 1.5, p)
        group = i % 2
        for t in range(4):
            scanner = ("A" if t < 2 else "B") if group == 0 else ("C" if t < 2 else "A")
            e = rng.normal(0, 0.5, p)
            clean = 10 + SLOPE * t + eta + e
            loc, scale = {"A": (0.0, 1.0), "B": (1.0, 2.0), "C": (-0.7, 1.0)}[scanner]
            rows.append({"subject_id": f"s{i:02d}", "visit": t, "time": t, "scanner": scanner,
                         **dict(zip(feats, 10 + SLOPE * t + eta + loc + scale * e, strict=True))})  # fmt: skip
            truth.append(dict(zip(feats, clean, strict=True)))
    return pd.DataFrame(rows), feats, pd.DataFrame(truth)


def _within_sd(frame: pd.DataFrame, values: pd.DataFrame, scanner: str) -> float:
    """SD of the residuals from each subject's own line over time, on one scanner's rows."""
    res = []
    for _, g in frame.groupby("subject_id"):
        v = values.loc[g.index].to_numpy()
        design = np.column_stack([np.ones(len(g)), g["time"].to_numpy(float)])
        fitted = design @ np.linalg.lstsq(design, v, rcond=None)[0]
        mask = (g["scanner"] == scanner).to_numpy()
        res.append((v - fitted)[mask])
    return float(np.concatenate(res).std())


def test_batch_effects_removed_time_and_subjects_kept():
    """Known answer: after longitudinal ComBat the scanner-B rows sit where the batch-free truth puts them
    (mean offset within 0.15 of the others'), their within-subject spread is no longer doubled (B/A ratio within
    0.8-1.25, plain ComBat leaves > 1.3: it scales by the total SD, which the subjects' own spread dominates), the
    time slope (0.4, averaged over the features) is kept and the subjects' intercepts are kept (correlation with the truth > 0.99)."""
    from qckit.harmonize import ComBat

    frame, feats, truth = _study()
    model = LongitudinalComBat(batch="scanner", subject="subject_id", continuous_covariates=["time"],
                               features=feats, min_batch_size=2)  # fmt: skip
    out = model.fit_transform(frame)
    offset = (out - truth).groupby(frame["scanner"]).mean().mean(axis=1)
    assert offset.max() - offset.min() < 0.15
    ratio = _within_sd(frame, out, "B") / _within_sd(frame, out, "A")
    assert 0.8 < ratio < 1.25
    plain = ComBat(
        batch="scanner", continuous_covariates=["time"], features=feats, min_batch_size=2
    ).fit_transform(frame)
    assert _within_sd(frame, plain, "B") / _within_sd(frame, plain, "A") > 1.3
    assert model.beta_[0].mean() == pytest.approx(SLOPE, abs=0.1)  # each feature: SE about 0.1
    subject_means = out.groupby(frame["subject_id"]).mean().to_numpy().ravel()
    true_means = truth.groupby(frame["subject_id"]).mean().to_numpy().ravel()
    assert np.corrcoef(subject_means, true_means)[0, 1] > 0.99


def test_subject_intercepts_are_statsmodels_blups_and_transform_reproduces_the_fit():
    frame, feats, _ = _study(seed=1, n_subjects=30)
    model = LongitudinalComBat(
        batch="scanner", continuous_covariates=["time"], features=feats, min_batch_size=2
    )
    fitted = model.fit_transform(frame)
    values = frame[feats].to_numpy()
    cov = frame[["time"]].to_numpy(float)
    bidx = model._batch_index(frame)
    fixed = model.intercept_ + cov @ model.beta_ + model.batch_effects_[bidx]
    ours = model._intercepts(values - fixed, frame["subject_id"].to_numpy())
    assert np.allclose(ours, model.fitted_intercepts_, rtol=1e-6, atol=1e-8)
    assert np.allclose(model.transform(frame).to_numpy(), fitted.to_numpy(), rtol=1e-9)
    # one subject's series harmonized alone gets the same values as within the whole table
    one = frame[frame["subject_id"] == "s03"]
    assert np.allclose(model.transform(one).to_numpy(), fitted.loc[one.index].to_numpy(), rtol=1e-9)


def test_model_folder_holds_no_subject_ids_and_refusals(tmp_path: Path):
    frame, feats, _ = _study(seed=2, n_subjects=20)
    model = LongitudinalComBat(batch="scanner", continuous_covariates=["time"], features=feats,
                               min_batch_size=2).fit(frame)  # fmt: skip
    save_model(model, tmp_path / "m")
    blob = b"".join(f.read_bytes() for f in (tmp_path / "m").iterdir())
    assert b"s01" not in blob and b"s19" not in blob
    again = load_model(tmp_path / "m")
    assert np.array_equal(again.transform(frame).to_numpy(), model.transform(frame).to_numpy())
    meta = tmp_path / "m" / "model.json"
    meta.write_text(meta.read_text().replace('"scanner"', '"Scanner"', 1))
    with pytest.raises(ModelFileError, match="checksum"):
        load_model(tmp_path / "m")
    once = frame.drop_duplicates("subject_id")
    with pytest.raises(HarmonizationError, match="no subject has more than one row"):
        LongitudinalComBat(batch="scanner", features=feats).fit(once)
    with pytest.raises(HarmonizationError, match="not seen"):
        model.transform(frame.assign(scanner="D"))


def test_commands_fit_apply_and_classify(tmp_path: Path):
    frame, feats, _ = _study(seed=3, n_subjects=40)
    frame["label"] = (frame["subject_id"].str[1:].astype(int) % 3 == 0).astype(int)
    frame.to_csv(tmp_path / "t.csv", index=False)
    res = runner.invoke(app, ["harmonize", "fit", str(tmp_path / "t.csv"), "-b", "scanner", "--continuous", "time",
                              "--exclude", "label", "--exclude", "visit", "--method", "longitudinal-combat", "-o", str(tmp_path / "model"),
                              "-q", "--min-batch-size", "2"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "model" / "model.json").read_text())["params"]["subject"] == "subject_id"
    res = runner.invoke(app, ["harmonize", "apply", str(tmp_path / "t.csv"), "--model", str(tmp_path / "model"),
                              "-o", str(tmp_path / "h.csv"), "-q"])  # fmt: skip
    assert res.exit_code == 0, res.output
    direct = LongitudinalComBat(batch="scanner", continuous_covariates=["time"], features=feats,
                                min_batch_size=2).fit_transform(frame)  # fmt: skip
    assert np.allclose(pd.read_csv(tmp_path / "h.csv")[feats].to_numpy(), direct.to_numpy(), rtol=1e-9)
    res = runner.invoke(app, ["classify", str(tmp_path / "t.csv"), "-l", "label", "-b", "scanner", "--continuous",
                              "time", "--exclude", "visit", "--method", "longitudinal-combat", "--folds", "3", "-q"])  # fmt: skip
    assert res.exit_code == 0, res.output
