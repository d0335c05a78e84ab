"""The annual / accreditation summary of one ACR session: the seven ACR tests x T1/T2 in the order of the ACR
phantom test data form, each with its values, limits and verdict (what a physicist files; the page is
`qckit.report.acr_summary_report`).

The rows are the ACR large phantom test guidance's (2018) seven tests and their items; which measurement fills
each cell is fixed here by name (`qckit qc run` names the T2 series' measurements with a `_t2` suffix). The ACR
scores geometric accuracy on the localizer and the T1 series only. A test is *pass* when every measured item with
an action limit passes, *fail* when one fails, *not measured* when none was measured; SNR, MTF50, the IPEM
distortion summary and the central frequency follow as supplementary items (no ACR limit).
"""

from __future__ import annotations

from typing import Any

from qckit.core.results import Measurement, Verdict
from qckit.core.session import QCSessionResult

# (test, [(item, measurement name)], scored on T2 as well)
ACR_TESTS: list[tuple[str, list[tuple[str, str]], bool]] = [
    ("1. Geometric accuracy", [
        ("sagittal localizer, superior-inferior", "geometric_length_sagittal"),
        ("slice 1, top-bottom", "geometric_length_slice1_vertical"),
        ("slice 1, left-right", "geometric_length_slice1_horizontal"),
        ("slice 5, top-bottom", "geometric_length_slice5_vertical"),
        ("slice 5, left-right", "geometric_length_slice5_horizontal"),
        ("slice 5, diagonal (upper left - lower right)", "geometric_length_slice5_diagonal_se"),
        ("slice 5, diagonal (upper right - lower left)", "geometric_length_slice5_diagonal_sw"),
    ], False),
    ("2. High-contrast spatial resolution", [
        ("upper-left arrays (right-left)", "resolution_rl"),
        ("lower-right arrays (top-bottom)", "resolution_tb"),
    ], True),
    ("3. Slice thickness accuracy", [("slice 1, crossed ramps", "slice_thickness")], True),
    ("4. Slice position accuracy", [
        ("slice 1, bar length difference", "slice_position_1"),
        ("slice 11, bar length difference", "slice_position_11"),
    ], True),
    ("5. Image intensity uniformity", [("slice 7, PIU", "piu")], True),
    ("6. Percent signal ghosting", [("slice 7, PSG", "psg")], True),
    ("7. Low-contrast object detectability", [
        ("slice 8 (1.4 %)", "low_contrast_slice8"),
        ("slice 9 (2.5 %)", "low_contrast_slice9"),
        ("slice 10 (3.6 %)", "low_contrast_slice10"),
        ("slice 11 (5.1 %)", "low_contrast_slice11"),
        ("total", "low_contrast_total"),
    ], True),
]  # fmt: skip
SUPPLEMENTARY: list[tuple[str, str]] = [
    ("SNR (single image, slice 7)", "snr"),
    ("SNR (subtraction, slice 7)", "snr_subtraction"),
    ("MTF50 along x", "mtf50_x"),
    ("MTF50 along y", "mtf50_y"),
    ("distortion: mean error (IPEM 112)", "distortion_mean_error_mm"),
    ("distortion: maximum |error|", "distortion_max_abs_error_mm"),
    ("distortion: CoV of the lengths", "distortion_cov_percent"),
    ("central frequency", "central_frequency_mhz"),
]
SERIES = (("t1", ""), ("t2", "_t2"))


def _cell(m: Measurement | None) -> dict[str, Any] | None:
    if m is None:
        return None
    return {"value": m.value, "unit": m.unit, "limit": m.limit.text if m.limit else None,
            "verdict": str(m.verdict), "slice": m.slice, "series_uid": m.series_uid}  # fmt: skip


def _verdict(cells: list[dict[str, Any] | None], present: bool) -> str:
    """A test's verdict on one series: fail when an item fails; not measured when the session has no such
    series; incomplete when some item of a measured series is absent or not measured; else pass (recorded
    items, without a limit, count as measured). One meaning of a NaN or infinite value everywhere: the item's
    `Measurement.verdict`."""
    got = [c["verdict"] for c in cells if c is not None]
    if Verdict.FAIL in got:
        return str(Verdict.FAIL)
    measured = [v for v in got if v in (Verdict.PASS, Verdict.RECORDED)]
    if not present and not measured:
        return str(Verdict.NOT_MEASURED)
    return str(Verdict.PASS if len(measured) == len(cells) else Verdict.INCOMPLETE)


def acr_summary(s: QCSessionResult) -> dict[str, Any]:
    """The session's ACR data-form summary as plain data (`acr-summary` in `qckit.schemas`)."""
    cells = {m.name: _cell(m) for m in s.measurements}
    head = {"phantom": s.phantom, "scanner": s.identity.to_dict(),
            "session": {"label": s.session_label, "date": s.session_date.isoformat(), "series": s.series}}  # fmt: skip
    present = {role: bool(s.series.get(role)) for role, _ in SERIES}
    return _summary(cells, present, head, [p.to_dict() for p in s.problems + s.skipped])


def acr_summary_from_record(doc: dict[str, Any]) -> dict[str, Any]:
    """The ACR summary of a session as the QC history holds it (`HistoryStore.session`), with the reviewed
    verdicts applied: a reviewed item shows the reviewed verdict, keeps the automated one beside it
    (`automated_verdict`) and names the review (`review`: by, at, reason); the tests' verdicts follow the reviewed
    items. A series counts as measured when the session stored one of its ACR items."""
    cells: dict[str, dict[str, Any] | None] = {}
    for m in doc["measurements"]:
        value = m["value"]
        finite = value is not None and value == value and abs(value) != float("inf")
        cell = {"value": value if finite else None, "unit": m["unit"], "limit": m.get("limit_text"),
                "verdict": m["verdict"], "slice": None, "series_uid": None}  # fmt: skip
        if m.get("review") is not None:
            r = m["review"]
            cell["automated_verdict"] = m["automated_verdict"]
            cell["review"] = {"by": r["by"], "at": r["at"], "reason": r["reason"]}
        cells[m["name"]] = cell
    names = [name for _t, items, _o in ACR_TESTS for _i, name in items]
    present = {"t1": any(n in cells for n in names), "t2": any(n + "_t2" in cells for n in names)}
    head = {"phantom": doc["phantom"], "scanner": {"key": doc["scanner_key"]},
            "session": {"label": f"{doc['scanner_key']}@{doc['session_date'][:10]}", "date": doc["session_date"],
                        "series": {}, "session_id": doc["session_id"]}}  # fmt: skip
    return _summary(cells, present, head, [])


def _summary(by: dict[str, dict[str, Any] | None], present_by_role: dict[str, bool], head: dict[str, Any],
             not_measured: list[dict[str, Any]]) -> dict[str, Any]:  # fmt: skip
    tests = []
    for title, items, on_t2 in ACR_TESTS:
        series: dict[str, Any] = {}
        for role, suffix in SERIES:
            if role == "t2" and not on_t2:
                series[role] = {"verdict": "not scored", "items": []}
                continue
            cells = [by.get(name + suffix) for _item, name in items]
            present = present_by_role[role]
            series[role] = {
                "verdict": _verdict(cells, present),
                "items": [{"item": item, "measurement": name + suffix, "measured": c,
                           # an item of a measured series that is absent leaves the test incomplete
                           "verdict": c["verdict"] if c else str(Verdict.INCOMPLETE if present else Verdict.NOT_MEASURED)}
                          for (item, name), c in zip(items, cells, strict=True)],
            }  # fmt: skip
        tests.append({"test": title, "series": series})
    supplementary = [
        {"item": item, "series": role, "measurement": name + suffix, "measured": by.get(name + suffix)}
        for item, name in SUPPLEMENTARY
        for role, suffix in SERIES
        if by.get(name + suffix) is not None
    ]
    verdicts = [t["series"][r]["verdict"] for t in tests for r, _ in SERIES]
    order = (Verdict.FAIL, Verdict.INCOMPLETE, Verdict.PASS)
    overall = str(next((v for v in order if v in verdicts), Verdict.NOT_MEASURED))
    reviewed = [{"measurement": k, **c["review"], "automated_verdict": c["automated_verdict"],
                 "verdict": c["verdict"]} for k, c in by.items() if c is not None and "review" in c]  # fmt: skip
    return {**head, "verdict": overall, "tests": tests, "supplementary": supplementary,
            "not_measured": not_measured, "reviews": reviewed}  # fmt: skip


__all__ = ["ACR_TESTS", "SUPPLEMENTARY", "acr_summary", "acr_summary_from_record"]
