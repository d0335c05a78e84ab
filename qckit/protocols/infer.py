"""Infer a reference protocol from a dataset's majority (`qckit protocol infer`).

Series are grouped into acquisitions by a sequence key: modality, SeriesDescription (or ProtocolName when the
description is empty), case-folded, and echo number when a series has several echoes. For each group and each
acquisition parameter:
- a strict majority (more than half of the group's series that report the parameter) -> a rule: `approx` with
  `rel_tol` (default 1%) for numbers, `equals` for text;
- no strict majority, for parameters that legitimately vary between acquisitions (CT tube current, exposure,
  CTDIvol under automatic exposure control) -> a `range` rule at level `warn` spanning the observed values;
- otherwise (a tie, or no value with a majority) -> undetermined: no rule, listed in the result and in the file.
An entry is required when its group appears in at least half of the sessions. Checking the same dataset against
the inferred protocol flags exactly the series in the minority.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import yaml

from qckit.protocols.attributes import ATTRIBUTES, observed_value
from qckit.protocols.check import session_of
from qckit.protocols.models import Protocol

MR_PARAMETERS = (
    "MagneticFieldStrength", "MRAcquisitionType", "ScanningSequence", "SequenceVariant", "Orientation",
    "RepetitionTime", "EchoTime", "InversionTime", "FlipAngle", "EchoTrainLength", "NumberOfAverages",
    "PixelBandwidth", "SliceThickness", "SpacingBetweenSlices", "PixelSpacing", "Rows", "Columns", "n_slices",
    "InPlanePhaseEncodingDirection", "ParallelReductionFactorInPlane",
)  # fmt: skip
CT_PARAMETERS = (
    "KVP", "ConvolutionKernel", "SliceThickness", "SpacingBetweenSlices", "PixelSpacing", "Rows", "Columns",
    "ReconstructionDiameter", "SpiralPitchFactor", "Orientation", "XRayTubeCurrent", "Exposure", "CTDIvol",
)  # fmt: skip
LEGITIMATELY_VARYING = frozenset({"XRayTubeCurrent", "Exposure", "CTDIvol"})


@dataclass
class InferResult:
    protocol: Protocol
    undetermined: list[dict[str, Any]] = field(default_factory=list)
    groups: dict[str, int] = field(default_factory=dict)

    def to_yaml(self, header: str = "") -> str:
        data = self.protocol.model_dump(mode="json", exclude_none=True, exclude_defaults=False)
        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=110)
        lines = [f"# {line}" if line else "#" for line in header.splitlines()]
        if self.undetermined:
            lines.append("# Undetermined (no majority; no rule written):")
            for u in self.undetermined:
                lines.append(f"#   {u['entry']}.{u['keyword']}: {u['reason']}")
        return "\n".join(lines) + ("\n" if lines else "") + text


def sequence_key(row: dict[str, Any]) -> str:
    name = (row.get("SeriesDescription") or row.get("ProtocolName") or "unnamed").strip()
    return re.sub(r"\s+", " ", name).casefold()


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", text.casefold()).strip("_")
    return slug if slug and slug[0].isalnum() else f"s_{slug}"


def _value_key(value: Any) -> Any:
    """Values equal to 6 significant digits vote together (absorbs vendor rounding such as 499.9998)."""
    if isinstance(value, list):
        return tuple(_value_key(v) for v in value)
    if isinstance(value, float):
        return float(f"{value:.6g}")
    if isinstance(value, str):
        return value.strip().casefold()
    return value


def _majority_rule(
    keyword: str, values: list[Any], rel_tol: float
) -> tuple[dict[str, Any] | None, str | None]:
    counts = Counter(_value_key(v) for v in values)
    ranked = counts.most_common()
    top_key, top_n = ranked[0]
    attr = ATTRIBUTES[keyword]
    if top_n * 2 > len(values):
        representative = next(v for v in values if _value_key(v) == top_key)
        if attr.kind == "text":
            return {"keyword": keyword, "equals": str(representative).strip()}, None
        number = float(representative[0] if isinstance(representative, list) else representative)
        if attr.dimension in ("count",) and float(number).is_integer():
            return {"keyword": keyword, "equals": int(number)}, None
        rule = {"keyword": keyword, "approx": number, "rel_tol": rel_tol}
        if attr.unit:
            rule["unit"] = attr.unit
        return rule, None
    if keyword in LEGITIMATELY_VARYING and attr.kind == "number":
        nums = [float(v) for v in values]
        return {
            "keyword": keyword,
            "range": {"min": min(nums), "max": max(nums)},
            "level": "warn",
            "unit": attr.unit,
        }, None
    if len(ranked) > 1 and ranked[1][1] == top_n:
        return None, f"tie between {ranked[0][0]!r} and {ranked[1][0]!r} ({top_n} series each)"
    return None, f"no value is in the majority ({top_n} of {len(values)} series share the most common one)"


def infer_protocol(
    rows: list[dict[str, Any]],
    *,
    name: str = "inferred",
    rel_tol: float = 0.01,
    session_by: str = "study",
    source: str = "inferred by qckit from a dataset's majority",
) -> InferResult:
    """A protocol whose rules are the majority acquisition parameters of `rows` (see module docstring)."""
    groups: dict[tuple[str, str, Any], list[dict[str, Any]]] = {}
    multi_echo: set[tuple[str, str]] = set()
    for row in rows:
        base = (str(row.get("Modality") or ""), sequence_key(row))
        groups.setdefault((*base, row.get("EchoNumbers")), []).append(row)
    for modality, seq, _echo in groups:
        if sum(1 for m, s, _ in groups if (m, s) == (modality, seq)) > 1:
            multi_echo.add((modality, seq))
    sessions = {session_of(r, session_by) for r in rows}
    entries: list[dict[str, Any]] = []
    undetermined: list[dict[str, Any]] = []
    used: set[str] = set()
    counts: dict[str, int] = {}
    for (modality, seq, echo), members in groups.items():
        first = members[0]
        entry_name = _slug(f"{modality}_{seq}" + (f"_echo{echo}" if (modality, seq) in multi_echo else ""))
        while entry_name in used:
            entry_name += "_"
        used.add(entry_name)
        counts[entry_name] = len(members)
        description = first.get("SeriesDescription") or first.get("ProtocolName") or "unnamed"
        name_key = "SeriesDescription" if first.get("SeriesDescription") else "ProtocolName"
        match: list[dict[str, Any]] = [
            {"keyword": "Modality", "equals": modality},
            {"keyword": name_key, "regex": f"(?i)^\\s*{re.escape(str(description).strip())}\\s*$"},
        ]
        if (modality, seq) in multi_echo and echo is not None:
            match.append({"keyword": "EchoNumbers", "equals": int(echo)})
        params = CT_PARAMETERS if modality == "CT" else MR_PARAMETERS
        rules = []
        for keyword in params:
            values = [v for r in members if (v := observed_value(r, keyword)) is not None and v != ""]
            if not values:
                continue
            rule, reason = _majority_rule(keyword, values, rel_tol)
            if rule is not None:
                rules.append(rule)
            else:
                undetermined.append({"entry": entry_name, "keyword": keyword, "reason": reason})
        in_sessions = {session_of(r, session_by) for r in members}
        entries.append(
            {
                "name": entry_name,
                "title": f"{description} ({modality}{f', echo {echo}' if (modality, seq) in multi_echo else ''})",
                "required": len(in_sessions) * 2 >= len(sessions),
                "max_count": max(Counter(session_of(r, session_by) for r in members).values()),
                "match": match,
                "rules": rules,
            }
        )
    modalities = sorted({str(r.get("Modality")) for r in rows if r.get("Modality")})
    protocol = Protocol.model_validate(
        {
            "schema_version": 1,
            "name": name,
            "title": f"Reference protocol inferred from {len(rows)} series in {len(sessions)} session(s)",
            "version": _dt.date.today().isoformat(),
            "modality": "/".join(modalities) or "unknown",
            "source": source,
            "description": f"Majority per acquisition; numbers within {rel_tol:g} relative. Edit before reuse.",
            "series": entries,
        }
    )
    return InferResult(protocol=protocol, undetermined=undetermined, groups=counts)
