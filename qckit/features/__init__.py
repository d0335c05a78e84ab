"""Radiomic feature extraction with pyradiomics: manifests, settings, per-case extraction, parallel runs."""

from qckit.features.extract import CaseError, extract_case
from qckit.features.manifest import Case, read_manifest
from qckit.features.params import ExtractionSettings, Normalization, load_settings
from qckit.features.runner import ExtractionRun, run_extraction

__all__ = [
    "Case",
    "CaseError",
    "ExtractionRun",
    "ExtractionSettings",
    "Normalization",
    "extract_case",
    "load_settings",
    "read_manifest",
    "run_extraction",
]
