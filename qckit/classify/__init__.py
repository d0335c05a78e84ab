"""The classifier layer: feature-table contract, leakage-free pipelines (ComBat inside the folds), metrics."""
