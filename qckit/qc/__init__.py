"""Periodic QC of the ACR large MRI phantom: one module per measurement, pure functions over 2-D slices."""
