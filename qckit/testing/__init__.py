"""Public, seeded generators of synthetic test data (DICOM series, corrupted files, phantoms, feature tables)."""
