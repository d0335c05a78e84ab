"""Sign-off of a filed record (a qualification certificate): a signature block and the content hash, immutable
revisions.

- **Content hash**: SHA-256 of the record's canonical JSON (keys sorted, no whitespace, no NaN) without its
  `signature` and `revision` blocks: any change to a value, a verdict, a criterion or the provenance changes it.
- **Signature block** (`signature`): who signed (name, role), when (UTC), how long the record is valid (days) and
  when it expires, and the content hash signed.
- **Revisions**: a signed record is immutable. Signing keeps a copy of the signed revision beside it
  (`certificate-r<N>.signed.json`); a later change (a re-run, a review, a hand edit) makes revision N + 1, whose
  `revision.supersedes` names revision N (its number, content hash, signer, date and file).
- `verify`: whether a record is signed and its content still has the hash that was signed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

UNSIGNED_KEYS = ("signature", "revision")


def content_hash(doc: dict[str, Any]) -> str:
    """SHA-256 (hex) of the record's canonical JSON without its signature and revision blocks."""
    body = {k: v for k, v in doc.items() if k not in UNSIGNED_KEYS}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def revision_number(doc: dict[str, Any]) -> int:
    """The record's revision (1 when it names none)."""
    rev = doc.get("revision")
    return int(rev.get("number", 1)) if isinstance(rev, dict) else 1


def verify(doc: dict[str, Any]) -> tuple[bool, str]:
    """(True, why) when the record is signed and unchanged since; (False, why) otherwise."""
    sig = doc.get("signature")
    if not isinstance(sig, dict) or not isinstance(sig.get("content_sha256"), str):
        return False, "not signed"
    now = content_hash(doc)
    if now != sig["content_sha256"]:
        return False, (f"changed after it was signed by {sig.get('by')} on {str(sig.get('signed_at'))[:10]}: "
                       f"content hash {now[:12]}... differs from the signed {sig['content_sha256'][:12]}...")  # fmt: skip
    return (
        True,
        f"signed by {sig.get('by')} ({sig.get('role')}) on {str(sig.get('signed_at'))[:10]}, unchanged",
    )


def signature_block(doc: dict[str, Any], by: str, role: str, valid_days: int | None,
                    now: dt.datetime | None = None) -> dict[str, Any]:  # fmt: skip
    """The signature block for `doc` as it stands (module docstring)."""
    now = now or dt.datetime.now(dt.UTC).replace(microsecond=0)
    expires = None if valid_days is None else (now + dt.timedelta(days=valid_days)).date().isoformat()
    return {"by": by, "role": role, "signed_at": now.isoformat(), "valid_days": valid_days, "expires": expires,
            "content_sha256": content_hash(doc), "revision": revision_number(doc)}  # fmt: skip


def next_revision(previous: dict[str, Any], file_name: str) -> dict[str, Any]:
    """The `revision` block of a record that replaces the signed `previous` (kept as `file_name`)."""
    sig = previous.get("signature") or {}
    n = revision_number(previous)
    return {"number": n + 1, "supersedes": {"number": n, "content_sha256": sig.get("content_sha256"),
                                            "signed_by": sig.get("by"), "signed_at": sig.get("signed_at"),
                                            "file": file_name}}  # fmt: skip


__all__ = ["content_hash", "next_revision", "revision_number", "signature_block", "verify"]
