"""Thin commands: every command body parses its options, calls one workflow and maps errors, so none is longer
than about 30 lines. Measured from the code: for each function registered as a Typer command (decorated with
`handle_errors`), the lines from its first statement after the docstring to its last (signature and docstring
excluded; helpers that only print are not commands). `lint-imports` holds the import side (qckit.cli imports
only qckit.workflows and qckit.core)."""

from __future__ import annotations

import ast
from pathlib import Path

CLI = Path(__file__).resolve().parents[2] / "qckit" / "cli"
LIMIT = 30


def command_bodies() -> dict[str, int]:
    out = {}
    for path in sorted(CLI.glob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if not isinstance(node, ast.FunctionDef):
                continue
            if not any(isinstance(d, ast.Name) and d.id == "handle_errors" for d in node.decorator_list):
                continue
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                body = body[1:]
            out[f"{path.name}:{node.name}"] = body[-1].end_lineno - body[0].lineno + 1 if body else 0
    return out


def test_no_command_body_is_longer_than_30_lines():
    bodies = command_bodies()
    assert len(bodies) >= 25, sorted(bodies)  # every command is found (qc run, normalize, harmonize fit, ...)
    long = {k: v for k, v in bodies.items() if v > LIMIT}
    assert not long, f"command bodies over {LIMIT} lines (move the work into qckit.workflows): {long}"


def test_the_measure_sees_a_long_body(tmp_path: Path):
    """The measure itself can fail: a 40-statement command body is counted as 40 lines."""
    src = "@handle_errors\ndef c():\n    '''doc'''\n" + "".join(f"    x{i} = {i}\n" for i in range(40))
    node = ast.parse(src).body[0]
    body = node.body[1:]
    assert body[-1].end_lineno - body[0].lineno + 1 == 40
