"""A volume crossing a pipe (`Volume.__getstate__`, `compact`) comes back bit for bit, in a quarter of the bytes
for scanner images; a volume without its header (`without_header`) is received without pydicom."""

from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np
import pytest

from qckit.dicom.volume import PhysicalScale, Volume, compact


def _volume(array: np.ndarray) -> Volume:
    return Volume("1.2.3", 30.0, array, (1.0, 1.0, 5.0), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1), 5.0,
                  header=None, paths=["a"], slice_positions=[0.0], scales=[PhysicalScale(0.5, 1.0, "x")])  # type: ignore[arg-type]  # fmt: skip


rng = np.random.default_rng(7)
CASES = {
    "uint8 range": rng.integers(0, 256, (2, 8, 8)).astype(float),
    "int16 range": rng.integers(-1000, 3000, (2, 8, 8)).astype(float),
    "uint16 range": rng.integers(0, 65536, (2, 8, 8)).astype(float),
    "int32 range": rng.integers(-(2**31), 2**31, (2, 8, 8)).astype(float),
    "beyond int32": np.full((1, 2, 2), 2.0**40),
    "fractions": rng.integers(0, 100, (2, 8, 8)) * 0.25,
    "nan": np.array([[[1.0, np.nan]]]),
    "infinity": np.array([[[1.0, np.inf]]]),
    "negative zero": np.array([[[-0.0, 3.0]]]),
    "negative zero among negatives": np.array([[[-0.0, -3.0]]]),
    "float32 integers": rng.integers(0, 4096, (2, 8, 8)).astype(np.float32),
    "int16 itself": rng.integers(-5, 5, (2, 8, 8)).astype(np.int16),
    "empty": np.zeros((0, 8, 8)),
    "strided view": rng.integers(0, 4096, (4, 64, 64)).astype(float)[:, ::2, 1::3],
    "one fraction past the first look": np.concatenate([np.zeros(4999), [0.5]]).reshape(1, 2, 2500),
}


@pytest.mark.parametrize("name", list(CASES))
def test_a_pickled_volume_comes_back_bit_for_bit(name: str):
    array = CASES[name]
    back = pickle.loads(pickle.dumps(_volume(array), protocol=pickle.HIGHEST_PROTOCOL))
    assert back.array.dtype == array.dtype and back.array.shape == array.shape
    assert back.array.tobytes() == array.tobytes()
    assert back.scales == [PhysicalScale(0.5, 1.0, "x")] and back.paths == ["a"] and back.echo_time == 30.0


def test_integer_valued_images_travel_in_the_smallest_integer_type():
    assert compact(CASES["uint8 range"])[0].dtype == np.uint8  # type: ignore[index]
    assert compact(CASES["int16 range"])[0].dtype == np.int16  # type: ignore[index]
    assert compact(CASES["uint16 range"])[0].dtype == np.uint16  # type: ignore[index]
    assert compact(CASES["int32 range"])[0].dtype == np.int32  # type: ignore[index]
    for name in (
        "beyond int32",
        "fractions",
        "nan",
        "infinity",
        "negative zero",
        "negative zero among negatives",
        "one fraction past the first look",
    ):
        assert compact(CASES[name]) is CASES[name], name
    image = rng.integers(0, 4000, (25, 128, 128)).astype(float)  # a DWI volume: 3.3 MB as float64
    assert len(pickle.dumps(_volume(image), protocol=pickle.HIGHEST_PROTOCOL)) < image.nbytes / 3.9


def test_a_volume_without_its_header_is_received_without_pydicom(tmp_path):
    """What `phantom diffusion`'s measuring process receives: volumes, the module that defines them, no pydicom."""
    from qckit.dicom.volume import load_volumes
    from qckit.synth.dicom import ACR_T1, SCANNERS, write_series

    write_series(tmp_path, SCANNERS["siemens-skyra-3t"], ACR_T1)
    vols, bad = load_volumes(sorted(str(p) for p in tmp_path.rglob("*") if p.is_file()))
    assert vols and not bad and vols[0].header is not None
    (tmp_path / "v.pickle").write_bytes(pickle.dumps([v.without_header() for v in vols]))
    code = (
        "import pickle, sys; v = pickle.loads(open(sys.argv[1], 'rb').read()); "
        "print(len(v), v[0].array.shape, v[0].header, 'pydicom' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "v.pickle")], capture_output=True, text=True,
                         check=True).stdout.split("\n")[0]  # fmt: skip
    assert out == f"{len(vols)} {vols[0].array.shape} None False", out
