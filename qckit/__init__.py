"""qckit: quality control and harmonization of quantitative medical imaging."""

__version__ = (
    "0.2.0"  # the single source of the package version (pyproject.toml reads it: tool.hatch.version)
)

__all__ = ["__version__"]
