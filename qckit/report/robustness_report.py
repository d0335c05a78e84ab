"""The feature robustness report: per feature the ICC of each perturbation family with its CI, the verdict, and
the agreement with the negative controls. Numbers come from `qckit.features.robustness`; nothing is recomputed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qckit.core.provenance import Provenance
from qckit.report.html import Page, badges, esc, number, table, write
from qckit.report.qc_report import plain_figure

_FAMILY = {"image": "image (rotation + noise)", "mask": "mask (volume adaptation + contour randomisation)"}


def _figure(rob: Any) -> dict[str, Any]:
    """Lower ICC bound per feature and family, sorted, with the threshold (a plain figure with the reports'
    default template)."""
    data = []
    for family in rob.families:
        col = f"{family}_icc_low"
        t = rob.table.sort_values(col, na_position="first")
        data.append({"type": "scatter", "mode": "markers", "name": _FAMILY.get(family, family),
                     "x": [str(f) for f in t["feature"]],
                     "y": [None if v != v else float(v) for v in t[col]]})  # fmt: skip
    n = len(rob.table)
    data.append({"type": "scatter", "mode": "lines", "name": f"ICC minimum {rob.criteria.icc_min:g}",
                 "x": [str(rob.table["feature"].iloc[0]), str(rob.table["feature"].iloc[-1])] if n else [],
                 "y": [rob.criteria.icc_min] * (2 if n else 0), "line": {"dash": "dash", "color": "#a3161c"}})  # fmt: skip
    layout = {"title": {"text": "Lower 95 % bound of ICC(1,1) per feature"}, "height": 420,
              "xaxis": {"showticklabels": n <= 60}, "yaxis": {"title": {"text": "ICC lower bound"}},
              "margin": {"b": 40 if n > 60 else 160}}  # fmt: skip
    return plain_figure(data, layout)


def write_report(rob: Any, summary: dict[str, Any], provenance: Provenance, path: Path) -> Path:
    """The robustness page."""
    page = Page(title="Feature robustness",
                subtitle=f"{summary['regions']} region(s), {summary['repeats']} instance(s) per family, "
                         f"{len(rob.table)} feature(s); seed {summary['seed']}", provenance=provenance)  # fmt: skip
    counts = rob.table["verdict"].value_counts().to_dict()
    page.add(
        "Summary",
        badges(
            {
                "robust": len(rob.stable),
                **{k: v for k, v in counts.items() if k != "pass"},
                "texture-independent (survive shuffling)": int(rob.table["texture_independent"].sum()),
                "failed instances": len(summary["failed"]),
            }
        )
        + (  # fmt: skip
            f"<p>A feature is robust when, for every perturbation family, the lower bound of the 95 % CI of its "
            f"ICC(1,1) across regions is at least {rob.criteria.icc_min:g} (Zwanenburg et al. 2019; Koo &amp; Li "
            f"2016). Families: {esc(', '.join(_FAMILY.get(f, f) for f in rob.families))}.</p>"
        ),
        figures=[_figure(rob)] if len(rob.table) else [],
    )
    headers = ["feature", "verdict"]
    for f in rob.families:
        headers += [f"{f} ICC", f"{f} 95 % CI"]
    headers += [f"CCC {c}" for c in rob.controls] + ["reason"]
    rows, classes = [], []
    for r in rob.table.to_dict(orient="records"):
        line = [r["feature"], r["verdict"]]
        for f in rob.families:
            line += [number(r[f"{f}_icc"]), f"[{number(r[f'{f}_icc_low'])}, {number(r[f'{f}_icc_high'])}]"]
        line += [number(r.get(f"ccc_{c}")) for c in rob.controls] + [r["reason"]]
        rows.append(line)
        classes.append(["", "pass" if r["verdict"] == "pass" else "fail" if r["verdict"] == "fail" else "warn"]
                       + [""] * (len(line) - 2))  # fmt: skip
    page.add("Features", table(headers, rows, classes))
    if rob.controls:
        page.add(
            "Negative controls",
            (
                "<p>The region's voxels were replaced (READII): <b>shuffled</b> (permuted), <b>randomized</b> (uniform "
                "in the region's range), <b>sampled</b> (drawn from the region's values). CCC is Lin's concordance "
                "between the original and the control values across regions. A feature with CCC &ge; 0.9 against the "
                "shuffled control does not depend on the region's texture (shape, size or histogram only). The "
                "control feature tables (<code>controls-*.parquet</code>) have the original table's columns: a "
                "classifier trained on them should do no better than chance; one that does as well as on the real "
                "features is not using the texture.</p>"
            ),
        )
    if summary["failed"] or rob.left_out:
        rows = [[f.get("subject_id", ""), f.get("perturbation", ""), f["reason"]] for f in summary["failed"]]
        page.add(
            "Instances not measured",
            table(["subject", "instance", "reason"], rows)
            + ("<p class='muted'>A region missing an instance is left out of that family's ICC.</p>"),
        )
    return write(page, path)


__all__ = ["write_report"]
