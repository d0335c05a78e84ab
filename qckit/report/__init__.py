"""Results -> self-contained HTML reports (the only package that imports plotly) and provenance."""
