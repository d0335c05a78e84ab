"""Phantoms: definitions, synthetic scanner, localization, ROI measurement and stability analysis."""
