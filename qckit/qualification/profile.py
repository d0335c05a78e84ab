"""Qualification profiles: what a study asks of every scanner before it may contribute data.

A profile (YAML, `profiles/*.yaml`, schema `profiles/profile.schema.json`) names

- `protocol`: the study's acquisition protocol the submission must comply with (bundled name or file);
- `completeness`: the protocol entries a submission must contain (default: the protocol's required entries);
  a missing one makes the certificate "incomplete", naming it, so the site can resubmit;
- `compliance`: which protocol-rule levels fail the scanner and which are findings;
- `phantom_tests`: phantom QC analyses to run (`qckit qc run`'s engine) with the measurements that must pass,
  each with the phantom definition's action limit or the profile's own;
- `stability`: radiomic-feature repeatability on repeated phantom scans (`qckit phantom repeatability`): how many
  repeats, the thresholds (CV, bias, ICC lower bound, EMA 15 % by default) and the verdict basis (the upper 95 %
  confidence bound of the CV by default: with few repeats the point estimate is not a verdict one can stand on).

Every criterion has a `level`: `fail` (the scanner is not qualified when it fails) or `finding` (qualified with
findings).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from qckit.core.definitions import (
    definition_bytes,
    definitions_dir,
    load_yaml,
    resolve_definition,
    validate_definition,
    yaml_names,
)
from qckit.core.errors import DefinitionError

Level = Literal["fail", "finding"]
Name = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")]


class ProfileError(DefinitionError):
    """A qualification profile that cannot be used (unknown, malformed, inconsistent)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Completeness(_Strict):
    """The protocol entries a submission must contain (default: the protocol's required entries)."""

    entries: list[Name] | None = None


class Compliance(_Strict):
    """How protocol-rule outcomes count: a rule of level `fail` / `warn` that is broken is a failure or a finding."""

    fail: Level = "fail"
    warn: Level = "finding"


class LimitOverride(_Strict):
    """A profile's own limit for a measurement (replaces the phantom definition's action limit)."""

    low: float | None = None
    high: float | None = None
    unit: str = ""
    source: str = Field("qualification profile", description="where the limit comes from")

    @model_validator(mode="after")
    def _one_bound(self) -> LimitOverride:
        if self.low is None and self.high is None:
            raise ValueError("give low, high or both")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError(f"low {self.low} is above high {self.high}")
        return self


class PhantomTest(_Strict):
    """A phantom QC session to measure on each scanner, and which of its measurements must pass."""

    phantom: str = Field(description="phantom definition (bundled name or file), e.g. acr-mri-large")
    protocol: str = Field(description="protocol that recognises the phantom series, e.g. acr-mri-large")
    series: Name = Field("t1", description="series role measured (t1, t2, ir, multi_echo)")
    measurements: list[str] = Field(
        default_factory=lambda: ["*"],
        description="measurement names (shell patterns) that must pass; '*' = every one with an action limit",
    )
    limits: dict[str, LimitOverride] = Field(
        default_factory=dict, description="measurement name -> own limit"
    )
    level: Level = "fail"


class Stability(_Strict):
    """Repeatability of radiomic features on repeated phantom scans of each scanner."""

    phantom: str = Field(description="phantom definition with the ROIs the features are measured in")
    protocol: str | None = Field(None, description="protocol that recognises the repeats (with `series`)")
    series: Name | None = Field(None, description="role of the repeat series in `protocol`")
    description: str | None = Field(None, description="or: SeriesDescription pattern of the repeats (shell)")
    params: str | None = Field(None, description="pyradiomics params file (default: the phantom's)")
    min_repeats: Annotated[int, Field(ge=2)] = 3
    cv_percent: Annotated[float, Field(gt=0)] = 15.0
    bias_percent: Annotated[float, Field(gt=0)] = 15.0
    icc_min: Annotated[float, Field(ge=-1, le=1)] | None = None
    basis: Literal["point", "upper_ci"] = "upper_ci"
    features: list[str] | None = Field(None, description="the features the study relies on (default: all)")
    required_share: Annotated[float, Field(gt=0, le=1)] = Field(
        1.0, description="share of those features that must be repeatable"
    )
    level: Level = "fail"

    @model_validator(mode="after")
    def _selector(self) -> Stability:
        if (self.protocol is None) != (self.series is None):
            raise ValueError("protocol and series go together (the role of the repeats in that protocol)")
        if self.protocol is None and self.description is None:
            raise ValueError("say which series are the repeats: protocol + series, or description")
        return self


class Profile(_Strict):
    """A qualification profile file (schema_version 1)."""

    schema_version: Literal[1]
    name: Name
    title: str
    description: str = ""
    references: list[str] = Field(default_factory=list, description="documents the criteria follow")
    protocol: str = Field(description="the study's acquisition protocol (bundled name or file)")
    completeness: Completeness = Completeness()
    compliance: Compliance = Compliance()
    phantom_tests: list[PhantomTest] = Field(default_factory=list)
    stability: Stability | None = None


@dataclass(frozen=True)
class LoadedProfile:
    """A profile with the file it came from and that file's sha256 (for the certificate's provenance)."""

    profile: Profile
    path: Path
    sha256: str


def bundled_dir() -> Path:
    """The folder of the bundled profiles (`QCKIT_PROFILES_DIR` to point elsewhere)."""
    return definitions_dir("profiles", "QCKIT_PROFILES_DIR")


def bundled_names() -> list[str]:
    """The names of the profiles shipped with qckit (`qckit qualify list`)."""
    return yaml_names(bundled_dir())


def parse_profile(data: Any, path: Path) -> Profile:
    """Validate parsed YAML as a profile; errors name the key path and the file."""
    return validate_definition(Profile, data, path, noun="a profile file", what="qualification profile",
                               error=ProfileError)  # fmt: skip


def load_profile(name_or_path: str | os.PathLike[str]) -> LoadedProfile:
    """A bundled profile by name or any profile file by path."""
    path = resolve_definition(name_or_path, bundled_dir(), kind="profile", file_noun="profile file",
                              error=ProfileError)  # fmt: skip
    raw = definition_bytes(path, ProfileError)
    profile = parse_profile(load_yaml(path, ProfileError, raw), path)
    return LoadedProfile(profile, path, hashlib.sha256(raw).hexdigest())


def json_schema_text() -> str:
    """The JSON Schema of profile files (`qckit qualify schema`, profiles/profile.schema.json)."""
    schema = Profile.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "qckit qualification profile (schema_version 1)"
    return json.dumps(schema, indent=2) + "\n"
