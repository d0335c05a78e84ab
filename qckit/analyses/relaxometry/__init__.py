"""Relaxometry (ISMRM/NIST system phantom): T1 and T2 fitting (`fit`); the phantom analyses build on it."""
