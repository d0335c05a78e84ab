"""Stable pseudonymous subject keys: patient identifiers never leave the reader.

key = "sub-" + first 12 hex digits of HMAC-SHA256(secret, PatientID | IssuerOfPatientID | PatientName |
PatientBirthDate). The secret comes from the environment variable ``QCKIT_PSEUDONYM_KEY``; without it a fixed
public default is used, which keeps keys stable across runs and machines but lets anyone who knows a patient's
identifiers recompute the key: set your own secret for clinical data.
"""

from __future__ import annotations

import hashlib
import hmac
import os

_DEFAULT_SECRET = "qckit-public-default-pseudonym-key-v1"
ENV_VAR = "QCKIT_PSEUDONYM_KEY"


def subject_key(
    patient_id: str | None,
    patient_name: str | None,
    birth_date: str | None,
    issuer: str | None = None,
) -> str:
    """Pseudonymous key of one subject (see module docstring)."""
    secret = os.environ.get(ENV_VAR, _DEFAULT_SECRET).encode()
    message = "|".join(v.strip() if v else "" for v in (patient_id, issuer, patient_name, birth_date))
    if not message.strip("|"):
        return "sub-unknown"
    return "sub-" + hmac.new(secret, message.encode("utf-8", "replace"), hashlib.sha256).hexdigest()[:12]
