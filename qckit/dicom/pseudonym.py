"""Stable pseudonymous subject keys: patient identifiers never leave the reader.

key = "sub-" + first 12 hex digits of HMAC-SHA256(secret, PatientID | IssuerOfPatientID | PatientName |
PatientBirthDate). The secret: `QCKIT_PSEUDONYM_KEY`, else the site key file made by `qckit key init`, else a
public default (see `qckit.core.keys`; commands warn when the public default is in use).
"""

from __future__ import annotations

import hashlib
import hmac

from qckit.core.keys import ENV_VAR, secret

__all__ = ["ENV_VAR", "subject_key"]


def subject_key(
    patient_id: str | None,
    patient_name: str | None,
    birth_date: str | None,
    issuer: str | None = None,
) -> str:
    """Pseudonymous key of one subject (see module docstring)."""
    key = secret()[0].encode()
    message = "|".join(v.strip() if v else "" for v in (patient_id, issuer, patient_name, birth_date))
    if not message.strip("|"):
        return "sub-unknown"
    return "sub-" + hmac.new(key, message.encode("utf-8", "replace"), hashlib.sha256).hexdigest()[:12]
