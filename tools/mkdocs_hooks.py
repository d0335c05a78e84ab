"""MkDocs hook: pages that are generated from the code, so the site cannot drift from what qckit does.

Markers replaced in the Markdown source:
  <!-- qckit:cli-reference -->          every command, argument and option, from the Typer app
  <!-- qckit:schema protocol|phantom|profile --> the JSON Schema of protocol / phantom / profile files
  <!-- qckit:output-schemas -->         the JSON Schemas of the --json outputs (qckit/schemas/*.json)
  <!-- qckit:include PATH LANG -->      a file of the repository, verbatim, in a code block
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# the definition files whose JSON Schema a page can show, and the module that makes it
SCHEMA_MODULES = {"protocol": "qckit.protocols.load", "phantom": "qckit.phantoms.load",
                  "profile": "qckit.qualification.profile"}  # fmt: skip


def _fence(text: str, lang: str) -> str:
    return f"```{lang}\n{text.rstrip()}\n```"


def _output_schemas() -> str:
    from qckit.schemas import output_schemas

    parts = []
    for name, (schema, where) in output_schemas().items():
        parts += [f"## `{name}`", "", schema.get("description", ""), "", f"Written by: {where}", "",
                  _fence(__import__("json").dumps(schema, indent=2), "json"), ""]  # fmt: skip
    return "\n".join(parts)


def on_page_markdown(markdown: str, page, config, files) -> str:  # noqa: ANN001 - MkDocs hook signature
    if "<!-- qckit:cli-reference -->" in markdown:
        from qckit.cli import app
        from qckit.cli.reference import cli_reference_markdown

        markdown = markdown.replace("<!-- qckit:cli-reference -->", cli_reference_markdown(app))

    def definition_schema(m: re.Match) -> str:
        module = importlib.import_module(SCHEMA_MODULES[m.group(1)])
        return _fence(module.json_schema_text(), "json")

    markdown = re.sub(r"<!-- qckit:schema (\w+) -->", definition_schema, markdown)
    if "<!-- qckit:output-schemas -->" in markdown:
        markdown = markdown.replace("<!-- qckit:output-schemas -->", _output_schemas())

    def include(m: re.Match) -> str:
        return _fence((ROOT / m.group(1)).read_text(encoding="utf-8"), m.group(2))

    return re.sub(r"<!-- qckit:include (\S+) (\w+) -->", include, markdown)
