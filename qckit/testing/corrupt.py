"""Seeded corrupted variants of valid DICOM files, for robustness (fuzz-style) tests.

Each variant records how it was made, so a test can tell which variants must be rejected (truncation, random
bytes) from those that may legitimately still read (a flipped byte inside pixel data).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

_VRS = [
    b"AE",
    b"AS",
    b"CS",
    b"DA",
    b"DS",
    b"FD",
    b"IS",
    b"LO",
    b"OB",
    b"OW",
    b"SQ",
    b"SH",
    b"UI",
    b"UL",
    b"US",
    b"UN",
    b"UT",
    b"ZZ",
    b"\x00\x00",
]


@dataclass(frozen=True)
class Variant:
    path: Path
    kind: str  # truncated | random | flipped | wrong_vr | zero_length | garbage_tail
    must_fail: bool


def _header_end(data: bytes) -> int:
    """Offset of the PixelData element (7FE0,0010) in an explicit-VR little-endian file, or len(data)."""
    idx = data.rfind(b"\xe0\x7f\x10\x00")
    return idx if idx > 0 else len(data)


def make_variants(valid: list[Path], out_dir: Path, n: int, seed: int = 0) -> list[Variant]:
    """`n` corrupted copies of the files in `valid`, written to `out_dir`."""
    rng = np.random.default_rng(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    variants: list[Variant] = []
    kinds = ["truncated", "random", "flipped", "wrong_vr", "zero_length", "garbage_tail"]
    for i in range(n):
        src = valid[int(rng.integers(len(valid)))]
        data = bytearray(src.read_bytes())
        kind = kinds[i % len(kinds)]
        hdr = _header_end(bytes(data))
        must_fail = False
        if kind == "truncated":
            cut = int(rng.integers(1, len(data) - 1))
            data = data[:cut]
            must_fail = True
        elif kind == "random":
            data = bytearray(rng.integers(0, 256, size=int(rng.integers(1, 4096)), dtype=np.uint8).tobytes())
            must_fail = True
        elif kind == "flipped":
            for _ in range(int(rng.integers(1, 8))):
                pos = int(rng.integers(132, hdr))
                data[pos] ^= 0xFF
        elif kind == "wrong_vr":
            # overwrite the VR of a random element header in the dataset (explicit VR: tag(4) + VR(2))
            candidates = [
                j
                for j in range(132, hdr - 6)
                if bytes(data[j + 4 : j + 6]).isalpha()
                and data[j + 4 : j + 6].isupper()
                and data[j + 1] == 0x00
            ]
            if candidates:
                pos = candidates[int(rng.integers(len(candidates)))]
                data[pos + 4 : pos + 6] = _VRS[int(rng.integers(len(_VRS)))]
        elif kind == "zero_length":
            data = bytearray()
            must_fail = True
        elif kind == "garbage_tail":
            cut = int(rng.integers(132, hdr))
            data = data[:cut] + bytearray(
                rng.integers(0, 256, size=len(data) - cut, dtype=np.uint8).tobytes()
            )
        path = out_dir / f"variant_{i:04d}_{kind}.dcm"
        path.write_bytes(bytes(data))
        variants.append(Variant(path=path, kind=kind, must_fail=must_fail))
    return variants
