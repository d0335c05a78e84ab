"""qckit: quality control and harmonization of quantitative medical imaging."""

# The single source of the package version: pyproject.toml reads this line (tool.hatch.version).
__version__ = "0.2.0"

__all__ = ["__version__"]
