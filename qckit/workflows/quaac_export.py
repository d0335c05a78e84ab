"""QC results as QuAAC documents (Quality Assurance Assessment and Compliance, the vendor-neutral QA result format
that pylinac writes and QATrack+ / RadMachine import), built and validated with the `quaac` package.

Mapping: one QuAAC data point per measurement of a session: `name` the measurement's name, `perform datetime` the
session's date, `measurement value` its value (a value beyond the measurable range or not measured: null, said in
the performer comment), `measurement unit`, `reference value` its nominal or its limit's text, `description` how it
was measured, the `primary equipment` the scanner (vendor, model, serial, type MR / CT scanner), the phantom as
ancillary equipment, `parameters` the session id, phantom, limit, the verdict that applies and the automated one; a
reviewed verdict is named in the performer comment (QuAAC's reviewer is a user with an e-mail, which the history
does not hold). The performer is the user exporting (name and e-mail, as QuAAC requires).
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

from qckit.core.errors import QckitInputError


def _equipment_type(phantom: str) -> str:
    return "CT scanner" if phantom.startswith(("catphan", "acr-ct", "qckit-bmd")) else "MR scanner"


def datapoints(
    rows: list[dict[str, Any]], session: dict[str, Any], scanner: dict[str, Any], performer: Any
) -> list[Any]:
    """QuAAC data points of one session (`rows`: name, value, unit, method, limit, verdict, automated_verdict,
    review)."""
    from quaac.models import DataPoint, Equipment

    machine = Equipment(name=str(scanner["key"]), type=_equipment_type(session["phantom"]),
                        serial_number=str(scanner.get("serial") or "unknown"),
                        manufacturer=str(scanner.get("manufacturer") or "unknown"),
                        model=str(scanner.get("model") or "unknown"))  # fmt: skip
    phantom = Equipment(name=session["phantom"], type="phantom", serial_number="unknown", manufacturer="unknown",
                        model=session["phantom"])  # fmt: skip
    when = dt.datetime.fromisoformat(str(session["date"]))
    out = []
    for r in rows:
        v = r.get("value")
        finite = isinstance(v, int | float) and math.isfinite(v)
        comment = [] if finite else ["not measured" if v is None or v != v else "beyond the measurable range"]
        if r.get("review"):
            rv = r["review"]
            comment.append(f"reviewed by {rv['by']} on {str(rv['at'])[:10]}: {r['verdict']} (automated "
                           f"{r['automated_verdict']}): {rv['reason']}")  # fmt: skip
        out.append(DataPoint(
            name=r["name"], perform_datetime=when, measurement_value=float(v) if finite else None,
            measurement_unit=r.get("unit") or "", reference_value=r.get("limit"), description=r.get("method") or "",
            performer=performer, performer_comment="; ".join(comment), primary_equipment=machine,
            ancillary_equipment=[phantom],
            parameters={"session_id": session.get("session_id"), "session": session.get("label"),
                        "phantom": session["phantom"], "limit": r.get("limit"), "verdict": r.get("verdict"),
                        "automated_verdict": r.get("automated_verdict")}))  # fmt: skip
    return out


def _performer(name: str, email: str) -> Any:
    from pydantic import ValidationError
    from quaac.models import User

    try:
        return User(name=name, email=email)
    except ValidationError as exc:
        raise QckitInputError(
            f"QuAAC needs the performer's name and a valid e-mail: {exc.errors()[0]['msg']}"
        ) from None


def check_quaac(path: Path, n: int | None = None) -> Any:
    """Read a QuAAC document back with `quaac`'s model and check its integrity: every hash the file records (the
    document's, each data point's, equipment's and user's) equals the one recomputed from the content read. (quaac
    1.0.2's own `check_hash=True` refuses every document it writes itself, also a one-point document made with its
    own classes; the hashes themselves agree, which is what is checked here.) Returns the document."""
    import json

    from quaac.models import Document

    raw = json.loads(path.read_text(encoding="utf-8"))
    doc = Document.from_json_file(str(path), check_hash=False)
    recorded = [raw["hash"]] + [d["hash"] for d in raw["datapoints"]]
    recomputed = [doc.hash] + [d.hash for d in doc.datapoints]
    rec_eq = sorted(e["hash"] for e in raw["equipment"]) + sorted(u["hash"] for u in raw["users"])
    com_eq = sorted(e.hash for e in doc.equipment) + sorted(u.hash for u in doc.users)
    if recorded != recomputed or rec_eq != com_eq:
        raise QckitInputError(f"{path}: the QuAAC document's hashes do not match its content")
    if n is not None and len(doc.datapoints) != n:
        raise QckitInputError(
            f"{path}: the QuAAC document read back has {len(doc.datapoints)} data points, not {n}"
        )
    return doc


def write_document(points: list[Any], path: Path) -> Path:
    """Write and validate a QuAAC document: written atomically, then read back with `quaac` (hash checked)."""
    import os
    import tempfile

    from quaac.models import Document

    from qckit.core.jsonio import default_mode

    if not points:
        raise QckitInputError("nothing to export: no measurement in the selection")
    doc = Document(datapoints=points)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        doc.to_json_file(tmp)
        check_quaac(Path(tmp), len(points))
        default_mode(tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def session_rows(result: Any) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """(rows, session, scanner) of a `QCSessionResult` (`qc run --quaac`)."""
    rows = [{"name": m.name, "value": m.value, "unit": m.unit, "method": m.method,
             "limit": m.limit.text if m.limit else None, "verdict": str(m.verdict),
             "automated_verdict": str(m.verdict), "review": None} for m in result.measurements]  # fmt: skip
    ident = result.identity.to_dict()
    scanner = {"key": ident.get("key"), "serial": ident.get("serial"), "manufacturer": ident.get("vendor"),
               "model": ident.get("model")}  # fmt: skip
    return (
        rows,
        {"phantom": result.phantom, "date": result.session_date.isoformat(), "label": result.session_label},
        scanner,
    )


def export_history(db: str | None, output: Path, path: Path, *, scanner: str, performer: str, email: str,
                   session: str | None = None, year: int | None = None) -> tuple[Path, int]:  # fmt: skip
    """The QC sessions of `scanner` (one `session`, a `year`, or all) as one QuAAC document at `path`; returns
    (path, data points)."""
    from qckit.history.store import existing_store

    user = _performer(performer, email)
    points: list[Any] = []
    with existing_store(db, output) as store:
        rows = store.sessions(scanner)
        if session is not None:
            sid = store.find_session(session)
            rows = [r for r in rows if r["session_id"] == sid]
        if year is not None:
            rows = [r for r in rows if r["session_date"][:4] == str(year)]
        if not rows:
            raise QckitInputError(f"no QC session of scanner {scanner!r} matches in {store.url}")
        sc = store.scanners().set_index("scanner_key")
        for r in rows:
            doc = store.session(r["session_id"])
            key = doc["scanner_key"]
            info = sc.loc[key].to_dict() if key in sc.index else {}
            meas = [{"name": m["name"], "value": m["value"], "unit": m["unit"], "method": m.get("method") or "",
                     "limit": m["limit_text"],
                     "verdict": m["verdict"], "automated_verdict": m["automated_verdict"], "review": m["review"]}
                    for m in doc["measurements"]]  # fmt: skip
            sess = {"phantom": doc["phantom"], "date": doc["session_date"], "session_id": doc["session_id"],
                    "label": f"{key}@{doc['session_date'][:10]}"}  # fmt: skip
            points += datapoints(meas, sess, {"key": key, **info}, user)
    return write_document(points, path), len(points)


def export_result(result: Any, path: Path, *, performer: str, email: str) -> Path:
    """One measured session (`qc run --quaac`) as a QuAAC document."""
    rows, sess, scanner = session_rows(result)
    return write_document(datapoints(rows, sess, scanner, _performer(performer, email)), path)


def parse_user(text: str | None) -> tuple[str, str]:
    """(name, e-mail) of 'Name <e-mail>'; input error otherwise (QuAAC records who performed the QA)."""
    import re

    m = re.fullmatch(r"\s*(.+?)\s*<\s*([^<>\s]+@[^<>\s]+)\s*>\s*", text or "")
    if m is None:
        raise QckitInputError("QuAAC needs who exports: --quaac-user / --user 'Name <e-mail>'")
    return m.group(1), m.group(2)


def export_command_run(db: str | None, scanner: str, path: Path, user: str, fmt: str, *, session: str | None = None,
                       year: int | None = None, json_out: Path | None = None) -> tuple[Path, int]:  # fmt: skip
    """`qckit qc export`: the selected sessions as a QuAAC document; (path, data points)."""
    from qckit.core.envelope import write_result

    if fmt != "quaac":
        raise QckitInputError(f"unknown export format {fmt!r} (quaac)")
    name, email = parse_user(user)
    out, n = export_history(db, path.parent, path, scanner=scanner, performer=name, email=email, session=session,
                            year=year)  # fmt: skip
    if json_out is not None:
        write_result(json_out, {"format": fmt, "file": str(out), "datapoints": n, "scanner": scanner},
                     kind="qc-export")  # fmt: skip
    return out, n


__all__ = [
    "datapoints",
    "export_command_run",
    "export_history",
    "export_result",
    "parse_user",
    "session_rows",
    "write_document",
]
