"""`qckit scan`, `qckit protocol check` and `qckit protocol infer` as workflows: index (or read an index), check or
infer, write every output. The commands parse their options, call one function here and print the result."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qckit.core.envelope import write_result
from qckit.core.errors import NoDataError, QckitInputError
from qckit.core.provenance import Provenance, command_line

Progress = Callable[[int, int], None]


def write_index(result: Any, out: Path | None, json_out: Path | None, errors: Path | None) -> None:
    """The index as a table (.csv/.parquet), as JSON and its bad items as CSV, where asked."""
    from qckit.dicom import write_errors, write_table

    if out is not None:
        write_table(result, out)
    if json_out is not None:
        write_result(
            json_out, result.to_dict(), kind="scan", inputs={"root": result.root, "files": result.n_files}
        )
    if errors is not None:
        write_errors(result, errors)


def scan_folder(directory: Path, *, out: Path | None = None, json_out: Path | None = None,
                errors: Path | None = None, workers: int | None = None, progress: Progress | None = None,
                index: Path | None = None, scheduler: str | None = None) -> Any:  # fmt: skip
    """Index a folder's DICOM headers and write the outputs; with nothing indexable the JSON and error list are
    still written (the reasons) and `NoDataError` is raised. `index`: the incremental index file (only new and
    changed files are read); `scheduler`: a Dask scheduler address to read the files on."""
    from qckit.dicom import ScanResult, scan

    if workers and scheduler:
        raise QckitInputError("use --workers (local) or --scheduler (Dask), not both")
    if index is not None and index.suffix.lower() != ".json":
        raise QckitInputError(f"{index}: the incremental index is a .json file")
    if index is not None and any(
        p is not None and p.absolute() == index.absolute() for p in (out, json_out, errors)
    ):
        raise QckitInputError(f"{index}: the incremental index cannot also be an output of the scan")
    try:
        result = scan(directory, workers=workers, progress=progress, index=index, scheduler=scheduler)
    except NoDataError as exc:
        if isinstance(exc.partial, ScanResult):
            write_index(exc.partial, None, json_out, errors)
        raise
    write_index(result, out, json_out, errors)
    return result


def session_keys() -> tuple[str, ...]:
    """The ways series are grouped into sessions for missing/duplicate checks (study, scanner-date, all)."""
    from qckit.protocols.check import SESSION_KEYS

    return tuple(SESSION_KEYS)


@dataclass
class CheckRun:
    result: Any  # qckit.protocols.check.CheckResult
    index: Any  # qckit.dicom.ScanResult


def check(source: Path, protocol: str, *, subset: str | None = None, session_by: str = "study", fail_on: str = "fail",
          json_out: Path | None = None, out: Path | None = None, html: Path | None = None,
          workers: int | None = None, progress: Progress | None = None) -> CheckRun:  # fmt: skip
    """Check every series of a folder (or a `qckit scan` index) against a protocol; writes JSON, CSV, HTML."""
    from qckit.dicom import load_or_scan
    from qckit.protocols import check_series, load_protocol
    from qckit.protocols.output import write_check_csv, write_check_json
    from qckit.report.protocol_report import write_report

    if fail_on not in ("fail", "warn"):
        raise QckitInputError(f"--fail-on must be 'fail' or 'warn', not '{fail_on}'")
    loaded = load_protocol(protocol)
    try:
        proto = loaded.protocol.subset(subset)
    except ValueError as exc:
        raise QckitInputError(f"--subset: {exc}") from None
    index = load_or_scan(source, workers=workers, progress=progress)
    result = check_series(proto, index.series, session_by=session_by)
    prov = Provenance(command_line(), {"source": str(source), "series": len(index.series), "files": index.n_files,
                                       "unreadable items": len(index.errors)},
                      {str(loaded.path.name): loaded.sha256})  # fmt: skip
    if json_out:
        write_check_json(result, prov, json_out)
    if out:
        write_check_csv(result, out)
    if html:
        write_report(result, prov, html)
    return CheckRun(result, index)


def infer(source: Path, output: Path, *, name: str = "site", rel_tol: float = 0.01, session_by: str = "study",
          json_out: Path | None = None, workers: int | None = None, progress: Progress | None = None) -> Any:  # fmt: skip
    """Infer a reference protocol from a dataset's majority, write it (it must load back) and its JSON summary;
    returns the inference result (entries and undetermined rules)."""
    import yaml

    from qckit.core.jsonio import atomic_write_text
    from qckit.dicom import load_or_scan
    from qckit.protocols.infer import infer_protocol
    from qckit.protocols.load import parse_protocol

    index = load_or_scan(source, workers=workers, progress=progress)
    result = infer_protocol(index.series, name=name, rel_tol=rel_tol, session_by=session_by)
    header = (f"Reference protocol inferred by qckit from {source}\n{command_line()}\n"
              "Rules are majority values; review before using it as a standard.")  # fmt: skip
    text = result.to_yaml(header)
    parse_protocol(yaml.safe_load(text), output)  # what we write must load back
    output.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(output, text)
    if json_out is not None:
        write_result(json_out, kind="protocol-infer", inputs={"source": str(source)}, document={
            "protocol": output.name, "name": name, "source": str(source), "series": len(index.series),
            "entries": [{"name": s.name, "rules": len(s.rules)} for s in result.protocol.series],
            "undetermined": result.undetermined, "command": command_line(),
        })  # fmt: skip
    return result


__all__ = ["CheckRun", "check", "infer", "scan_folder", "session_keys", "write_index"]
