"""Phantom QC analyses: the `Analysis` interface (`base`), the registry, and the engine that runs the analyses
a phantom definition lists. Built-in analyses live in sub-packages (`mr/`: the ACR large phantom)."""
