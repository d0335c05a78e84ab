"""The secret behind pseudonymous subject keys: where it comes from, and a per-site key file.

Resolution order: the environment variable `QCKIT_PSEUDONYM_KEY`; else the key file named by `QCKIT_KEY_FILE`;
else the user's key file `$XDG_CONFIG_HOME/qckit/pseudonym.key` (default `~/.config/qckit/pseudonym.key`), made
by `qckit key init` (32 random bytes, hex, mode 0600); else a public default. With the public default anyone who
knows a patient's identifiers can recompute the key (a 6-digit patient-ID space is reversed in seconds), so every
command that writes subject keys warns once and the provenance records which secret was used.
"""

from __future__ import annotations

import os
import secrets
from functools import lru_cache
from pathlib import Path

from qckit.core.errors import QckitInputError
from qckit.core.files import read_regular

DEFAULT_SECRET = "qckit-public-default-pseudonym-key-v1"
ENV_VAR = "QCKIT_PSEUDONYM_KEY"
FILE_ENV_VAR = "QCKIT_KEY_FILE"


def key_file() -> Path:
    named = os.environ.get(FILE_ENV_VAR)
    if named:
        return Path(named)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "qckit" / "pseudonym.key"


@lru_cache(maxsize=8)
def _read_key(path: str, mtime_ns: int) -> str:
    raw = read_regular(path, what="pseudonym key file", limit=1 << 16)
    try:
        text = raw.decode("ascii").strip()
    except UnicodeDecodeError as exc:
        raise QckitInputError(f"{path}: a pseudonym key file holds ASCII text (made by `qckit key init`); byte "
                              f"{exc.start} is not") from None  # fmt: skip
    if len(text) < 32:
        raise QckitInputError(
            f"{path}: a pseudonym key file holds at least 32 characters (made by `qckit key init`)"
        )
    return text


def secret() -> tuple[str, str]:
    """(secret, source) where source is "environment", "key file PATH" or "public default"."""
    env = os.environ.get(ENV_VAR)
    if env:
        return env, "environment"
    path = key_file()
    try:
        st = path.stat()
    except OSError as exc:
        if os.environ.get(FILE_ENV_VAR):  # a key file was named: never fall back to the public key silently
            raise QckitInputError(f"{FILE_ENV_VAR}={path}: cannot read the key file ({exc.strerror or exc}); "
                                  "fix the path, run `qckit key init`, or unset the variable") from None  # fmt: skip
        return DEFAULT_SECRET, "public default"
    return _read_key(str(path), st.st_mtime_ns), f"key file {path}"


def default_in_use() -> bool:
    return secret()[1] == "public default"


def init_key(path: Path | None = None, *, force: bool = False) -> Path:
    """Write a new random key file (refusing to replace one unless `force`: keys made with it would change)."""
    target = path or key_file()
    if target.exists() and not force:
        raise QckitInputError(f"{target}: a key file exists already; replacing it changes every subject key "
                              "(pass --force if that is meant)")  # fmt: skip
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    key = secrets.token_hex(32) + "\n"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(key)
            fh.flush()
            os.fsync(fh.fileno())
        if read_regular(tmp, what="new key file") != key.encode(
            "ascii"
        ):  # verified before it replaces anything
            raise OSError(f"{tmp}: the key read back differs from the key written")
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)  # no temp file left by a full disk
        if exc.filename is None:  # write() and fsync() name no file: name the key file
            raise OSError(exc.errno, exc.strerror or str(exc), str(target)) from None
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)  # nor by an interrupt
        raise
    _read_key.cache_clear()
    return target


PUBLIC_KEY_WARNING = (
    "subject keys are made with qckit's public default secret: anyone who knows a patient's identifiers can "
    "recompute them. Create a site key once with `qckit key init` (or set QCKIT_PSEUDONYM_KEY)."
)
