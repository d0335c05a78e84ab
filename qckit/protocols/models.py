"""Protocol definitions: pydantic v2 models of the YAML files in `protocols/` (schema_version 1).

A protocol lists expected series. Each has `match` conditions (which index rows are candidates for it) and
`rules` (what a matched series must satisfy). A condition names one attribute (`keyword`: a DICOM keyword that
the index records, or a qckit-derived attribute such as `Orientation` or `FieldOfView`) and exactly one test:

- `equals: V` / `one_of: [V, ...]` - text compares case-insensitively; numbers to 1 part in 10^4 (absorbs vendor
  rounding of stored values, e.g. a Philips TR of 499.9998 ms equals 500);
- `range: {min: A, max: B}` - inclusive, either bound optional, with the same 10^-4 relative slack;
- `approx: V` with `abs_tol` and/or `rel_tol` (fraction): |observed - V| <= max(abs_tol, rel_tol * |V|);
- `regex: P` - Python regular expression, searched (anchor it with ^...$ to match the whole value);
- `present: true|false` - the attribute is (not) in the header.

Numbers are in `unit` (converted from the index's canonical unit; default: the canonical unit). A list attribute
(PixelSpacing) passes when every component passes. Rules have a `level`: `fail` or `warn`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator
from pydicom.datadict import keyword_dict

from qckit.protocols.attributes import ATTRIBUTES, UNITS

SCHEMA_VERSION = 1
Level = Literal["fail", "warn"]
_TESTS = ("equals", "one_of", "range", "approx", "regex", "present")


class RangeSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _bounds(self) -> RangeSpec:
        if self.min is None and self.max is None:
            raise ValueError("a range needs 'min', 'max' or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"range min {self.min} is greater than max {self.max}")
        return self


Scalar = str | float | int | bool


class Condition(BaseModel):
    """One test of one attribute (see module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    keyword: str = Field(description="DICOM keyword recorded by the index, or a qckit-derived attribute")
    equals: Scalar | None = None
    one_of: list[Scalar] | None = None
    range: RangeSpec | None = None
    approx: float | None = None
    abs_tol: Annotated[float, Field(ge=0)] | None = None
    rel_tol: Annotated[float, Field(ge=0)] | None = None
    regex: str | None = None
    present: bool | None = None
    unit: str | None = Field(default=None, description="unit of the numbers in this condition")

    @field_validator("keyword")
    @classmethod
    def _known_keyword(cls, value: str) -> str:
        if value in ATTRIBUTES:
            return value
        if value in keyword_dict:
            raise ValueError(
                f"'{value}' is a DICOM keyword but qckit's index does not record it; usable attributes: "
                + ", ".join(sorted(ATTRIBUTES))
            )
        raise ValueError(
            f"'{value}' is not a DICOM keyword (pydicom's dictionary) nor a qckit attribute; usable attributes: "
            + ", ".join(sorted(ATTRIBUTES))
        )

    @model_validator(mode="after")
    def _one_test(self) -> Condition:
        given = [t for t in _TESTS if getattr(self, t) is not None]
        if len(given) != 1:
            raise ValueError(
                f"a condition on {self.keyword} needs exactly one of {', '.join(_TESTS)} (got {given or 'none'})"
            )
        test = given[0]
        attr = ATTRIBUTES[self.keyword]
        if (self.abs_tol is not None or self.rel_tol is not None) and test != "approx":
            raise ValueError("abs_tol / rel_tol go with 'approx' only")
        if test == "approx" and self.abs_tol is None and self.rel_tol is None:
            raise ValueError(f"'approx' on {self.keyword} needs abs_tol and/or rel_tol")
        if attr.kind == "text" and test in ("range", "approx"):
            raise ValueError(f"{self.keyword} is text: use equals, one_of, regex or present, not {test}")
        if attr.kind != "text" and test == "regex":
            raise ValueError(f"{self.keyword} is a number: use equals, one_of, range or approx, not regex")
        if test == "regex":
            try:
                re.compile(str(self.regex))
            except re.error as exc:
                raise ValueError(f"invalid regular expression {self.regex!r}: {exc}") from None
        if attr.kind != "text" and test in ("equals", "one_of"):
            values = [self.equals] if test == "equals" else list(self.one_of or [])
            for v in values:
                if isinstance(v, bool) or not isinstance(v, int | float):
                    raise ValueError(f"{self.keyword} is a number: {v!r} is not a number")
        self._check_unit(attr)
        return self

    def _check_unit(self, attr: Any) -> None:
        if self.unit is None:
            return
        dim = attr.dimension
        allowed = sorted(UNITS.get(dim, {})) if dim else []
        if attr.kind == "text" or not allowed:
            raise ValueError(f"{self.keyword} has no unit (got unit '{self.unit}')")
        if self.unit not in UNITS[dim]:
            raise ValueError(
                f"'{self.unit}' is not a unit of {dim} for {self.keyword}; allowed units: {', '.join(allowed)}"
            )

    @property
    def test(self) -> str:
        """Which comparison the condition makes (equals, one_of, range, ...): the one field that is set."""
        return next(t for t in _TESTS if getattr(self, t) is not None)


class Rule(Condition):
    """A condition that a matched series must satisfy, with its level and (optionally) why."""

    level: Level = "fail"
    why: str | None = Field(default=None, description="rationale or citation for this rule")


class ExpectEach(BaseModel):
    """One matched series (acquisition) is expected per listed value of `keyword` (e.g. every inversion time of
    an IR protocol, every echo of a multi-echo train); each value without a match is a missing series."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    keyword: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$")]
    values: Annotated[list[float], Field(min_length=1)]
    abs_tol: Annotated[float, Field(ge=0)] = 0.5
    unit: str | None = None


class MeasurableRange(BaseModel):
    """The relaxation times (ms) a quantitative series can measure (spheres outside: "not measurable")."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    min: Annotated[float, Field(gt=0)]
    max: Annotated[float, Field(gt=0)]
    why: str | None = None

    @model_validator(mode="after")
    def _order(self) -> MeasurableRange:
        if self.min >= self.max:
            raise ValueError(f"measurable range min {self.min} must be below max {self.max}")
        return self


class ExpectedSeries(BaseModel):
    """One series a protocol expects: how to recognise it (`match`), what it must satisfy (`rules`), its role for
    the analyses, and what to report when it is missing or duplicated.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_]*$")]
    title: str | None = None
    role: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_]*$")] | None = Field(
        default=None,
        description="what the series is for (t1, t2, localizer, ir, multi_echo, ...): analyses ask for roles, "
        "not entry names; default: the entry's name",
    )
    echo: Annotated[int, Field(ge=1)] | None = Field(
        default=None, description="echo number within a multi-echo role (t2 echo 1 / echo 2)"
    )
    required: bool = True
    missing_level: Level = "fail"
    max_count: Annotated[int, Field(ge=1)] = 1
    duplicate_level: Level = "warn"
    match: Annotated[list[Condition], Field(min_length=1)]
    rules: list[Rule] = Field(default_factory=list)
    expect_each: ExpectEach | None = Field(
        default=None, description="one series per listed value (inversion times, echo times)"
    )
    measurable: MeasurableRange | None = Field(
        default=None, description="relaxation times (ms) this quantitative series can measure"
    )

    @property
    def series_role(self) -> str:
        """The role analyses ask for: `role`, or the entry's name when none is given."""
        return self.role or self.name


class ProtocolSubset(BaseModel):
    """A named part of a protocol that a shorter routine acquires (the ACR weekly QC: localizer and T1 only):
    checked with `--subset NAME`, its entries are required as in the full protocol and the others become
    optional (checked when present, never "missing")."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    title: str
    source: str = Field(description="where the subset is defined (citation)")
    series: Annotated[list[str], Field(min_length=1, description="the protocol entries the subset requires")]


class Protocol(BaseModel):
    """A protocol file (schema_version 1)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    schema_version: Literal[1] = Field(description="version of this file format")
    name: str
    title: str
    version: str
    modality: str
    source: str = Field(description="citation of the protocol this file encodes")
    url: str | None = None
    description: str | None = None
    unmatched_level: Literal["pass", "warn", "fail"] = Field(
        default="warn", description="status given to a series that matches no entry"
    )
    phantom: str | None = Field(
        default=None,
        description="the phantom definition these series image (bundled name): `qckit qc run` chooses the phantom "
        "of a session from the protocol its series match",
    )
    other_phantoms: list[str] = Field(
        default_factory=list,
        description="other phantoms the same acquisition images (bundled names; `qc run --phantom NAME` picks one, "
        "e.g. the CatPhan models of one CT protocol); `phantom` is the one chosen when none is given",
    )
    series: Annotated[list[ExpectedSeries], Field(min_length=1)]
    subsets: dict[Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")], ProtocolSubset] = Field(
        default_factory=dict,
        description="named subsets of the series a shorter routine acquires (weekly QC): `--subset NAME`",
    )
    _applied: str | None = PrivateAttr(default=None)  # the subset this copy checks (`subset()`), None: all

    @property
    def applied_subset(self) -> str | None:
        """The subset this protocol object checks (see `subset`), or None for the whole protocol."""
        return self._applied

    @model_validator(mode="after")
    def _unique_names(self) -> Protocol:
        names = [s.name for s in self.series]
        for key, sub in self.subsets.items():
            unknown = sorted(set(sub.series) - set(names))
            if unknown:
                raise ValueError(
                    f"subset {key!r} names series the protocol does not have: {', '.join(unknown)}"
                )
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"series names must be unique; repeated: {', '.join(dup)}")
        roles = [(s.series_role, s.echo) for s in self.series]
        dup_roles = sorted(
            {f"{r}" + (f" echo {e}" if e else "") for r, e in roles if roles.count((r, e)) > 1}
        )
        if dup_roles:
            raise ValueError(f"series roles (with echo) must be unique; repeated: {', '.join(dup_roles)}")
        return self

    def subset(self, name: str | None) -> Protocol:
        """This protocol as subset `name` requires it: the subset's entries required, the others optional
        (`name` None: the protocol itself). An unknown subset is a ValueError naming the known ones."""
        if name is None:
            return self
        if name not in self.subsets:
            known = ", ".join(sorted(self.subsets)) or "none"
            raise ValueError(f"protocol {self.name} has no subset {name!r} (subsets: {known})")
        keep = set(self.subsets[name].series)
        series = [e if e.name in keep else e.model_copy(update={"required": False}) for e in self.series]
        out = self.model_copy(
            update={"series": series, "title": f"{self.title} - {self.subsets[name].title}"}
        )
        out._applied = name
        return out

    def entry(self, name: str) -> ExpectedSeries | None:
        """The expected series called `name`, or None."""
        return next((s for s in self.series if s.name == name), None)
