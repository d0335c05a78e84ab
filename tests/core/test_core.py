"""The core room: one JSON policy, one scanner identity, typed results, definition loading."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import pytest

from qckit.core.definitions import definitions_dir, load_yaml
from qckit.core.errors import DefinitionError
from qckit.core.identity import ScannerIdentity, canonical_vendor
from qckit.core.jsonio import dumps, strict_loads, write_json
from qckit.core.results import Limit, Measurement, Verdict
from qckit.phantoms.models import LimitSpec


def test_json_policy_nan_and_inf_become_null_and_output_parses_strictly(tmp_path: Path):
    data = {"a": math.nan, "b": [np.float64("inf"), -math.inf, np.float32(1.5)], "c": np.arange(3),
            "d": dt.datetime(2024, 1, 5, 7, 30), "e": Verdict.FAIL, "f": {1, 2}, "g": np.int64(7)}  # fmt: skip
    text = dumps(data)
    assert "NaN" not in text and "Infinity" not in text
    back = strict_loads(text)
    assert back == {"a": None, "b": [None, None, 1.5], "c": [0, 1, 2], "d": "2024-01-05T07:30:00", "e": "fail",
                    "f": [1, 2], "g": 7}  # fmt: skip
    with pytest.raises(ValueError, match="non-standard JSON constant NaN"):
        strict_loads('{"x": NaN}')
    out = write_json(tmp_path / "sub" / "x.json", data)
    assert strict_loads(out.read_text()) == back
    assert [p.name for p in out.parent.iterdir()] == ["x.json"]  # no temporary file left


def test_flat_number_lists_keep_the_nan_policy():
    """A flat list of plain finite numbers is taken as it is (figure data, without a call per number); any other
    list, a non-finite value in it included, goes element by element."""
    from qckit.core.jsonio import jsonable

    assert jsonable([1.0, 2, -0.0, 1e308]) == [1.0, 2, -0.0, 1e308]
    assert jsonable([1.0, math.nan, math.inf, -math.inf, 3]) == [1.0, None, None, None, 3]
    assert jsonable([True, 1.0]) == [True, 1.0] and type(jsonable([True])[0]) is bool
    assert jsonable([np.float64(math.nan), 2.0]) == [None, 2.0]
    assert jsonable([[1.0, math.nan], [2.0]]) == [[1.0, None], [2.0]]
    flat = [1.0, 2.0]
    assert jsonable(flat) is not flat  # a copy: the caller's list is never handed out


@pytest.mark.parametrize(
    ("maker", "vendor"),
    [("GE MEDICAL SYSTEMS", "GE"), ("GE Healthcare", "GE"), ("SIEMENS", "Siemens"), ("Siemens Healthineers", "Siemens"),
     ("Philips Medical Systems", "Philips"), ("Philips Healthcare", "Philips"), ("TOSHIBA_MEC", "Canon"),
     ("Canon Medical Systems", "Canon"), ("Acme Imaging", "Acme Imaging")],
)  # fmt: skip
def test_vendor_spellings_are_canonical(maker: str, vendor: str):
    assert canonical_vendor(maker) == vendor


def test_scanner_identity_keys_and_mismatches():
    a = ScannerIdentity.from_values("Philips Medical Systems", "Ingenia", "12345", 1.5, "MR1")
    b = ScannerIdentity.from_values("Philips", "Ingenia", " 12345 ", "1.5")
    assert a.key == b.key == "Philips-Ingenia-12345" and not a.mismatches(b)
    siemens = ScannerIdentity.from_values("SIEMENS", "MAGNETOM Skyra", "ANONYMIZED", 3.0, "Anon")
    assert siemens.serial is None and siemens.station is None and siemens.key == "Siemens-Skyra-noserial"
    assert not siemens.verified() and a.verified()
    other = ScannerIdentity.from_values("SIEMENS", "Aera", "ANONYMIZED", 1.5)
    assert other.mismatches(siemens) == ["model Aera vs Skyra", "field strength 1.5 T vs 3 T"]
    assert ScannerIdentity.from_values("GE", "Signa", None, None, "STATION7").key == "GE-Signa-STATION7"
    assert ScannerIdentity.from_values("GE", "Signa", "1", None).mismatches(
        ScannerIdentity.from_values("GE", "Signa", "2")
    ) == ["serial 1 vs 2"]


def test_measurement_verdicts_and_limits():
    lim = Limit(87.5, None, ">= 87.5%", "ACR")
    assert Measurement("piu", 90.0, "%", "m", limit=lim).verdict is Verdict.PASS
    assert Measurement("piu", 80.0, "%", "m", limit=lim).verdict is Verdict.FAIL
    nan = Measurement(
        "piu", math.nan, "%", "m", limit=lim
    )  # one meaning: not measured (the session is incomplete)
    assert nan.verdict is Verdict.NOT_MEASURED and nan.passed is None
    assert Measurement("snr", 200.0, "", "m").passed is None
    assert Measurement("snr", 200.0, "", "m").verdict is Verdict.RECORDED
    d = Measurement("piu", 80.0, "%", "m", limit=lim).to_dict()
    assert d["verdict"] == "fail" and d["limit_low"] == 87.5 and d["limit"] == ">= 87.5%"
    assert Verdict.worst([Verdict.PASS, Verdict.WARN]) is Verdict.WARN
    assert Verdict.worst([Verdict.NOT_MEASURED]) is Verdict.NOT_MEASURED


def test_limit_specs_resolve_nominal_prescribed_and_bounds():
    assert LimitSpec(nominal="prescribed", tolerance=0.7, unit="mm", source="ACR").resolve(3.0) == Limit(
        2.3, 3.7, "3 +- 0.7 mm", "ACR"
    )
    assert LimitSpec(nominal="prescribed", tolerance=0.7, unit="mm", source="ACR").resolve(None) is None
    assert LimitSpec(high=2.5, unit="%", source="ACR").resolve().text == "<= 2.5%"
    with pytest.raises(ValueError, match="either 'low'/'high' or 'nominal'"):
        LimitSpec(low=1, nominal=2, tolerance=1, source="x")


def test_yaml_loader_bounds_alias_expansion_and_refuses_non_utf8(tmp_path: Path):
    bomb = tmp_path / "bomb.yaml"
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x","x"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 8)]
    bomb.write_text("\n".join(lines) + "\n")
    with pytest.raises(DefinitionError, match="aliases expand to more than"):
        load_yaml(bomb)
    small = tmp_path / "small.yaml"
    small.write_text("a: &x [1, 2]\nb: *x\n")
    assert load_yaml(small) == {"a": [1, 2], "b": [1, 2]}
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(DefinitionError, match="not UTF-8"):
        load_yaml(latin)


def test_bundled_definitions_are_found_in_the_checkout():
    root = Path(__file__).resolve().parents[2]
    assert definitions_dir("protocols") == root / "protocols"
    assert (definitions_dir("phantoms") / "acr-mri-large.yaml").is_file()


def test_the_result_envelope_stamps_once():
    from qckit import __version__
    from qckit.core.envelope import stamp
    from qckit.core.provenance import Provenance

    doc = stamp({"rows": 3}, kind="extract", inputs={"manifest": "m.csv"})
    p = doc["provenance"]
    assert (
        p["qckit_version"] == __version__
        and p["document"] == "extract"
        and p["inputs"] == {"manifest": "m.csv"}
    )
    assert p["created"].endswith("Z") and p["command"]
    own = {"x": 1, "provenance": {"qckit_version": "own"}}
    assert stamp(own, Provenance("other")) is own  # a document's own provenance is never overwritten


def test_vendor_inferred_from_the_model_when_manufacturer_is_missing():
    from qckit.core.identity import vendor_from_model

    assert [vendor_from_model(m) for m in ("Ingenia", "MAGNETOM Sola", "SIGNA Artist", "Achieva dStream",
                                           "Discovery MR750", "Vantage Orian", "Foo 3000", None)] == [
        "Philips", "Siemens", "GE", "Philips", "GE", "Canon", None, None]  # fmt: skip
    ident = ScannerIdentity.from_values(None, "Ingenia", "123", 1.5)
    assert ident.vendor == "Philips" and ident.vendor_inferred and ident.key == "Philips-Ingenia-123"
    assert not ScannerIdentity.from_values("Philips Medical Systems", "Ingenia", "123", 1.5).vendor_inferred


def test_parquet_tables_write_floats_plain_and_read_back_the_same(tmp_path: Path):
    """Float columns (features) are written without dictionary encoding, text and integer columns with it; the
    table reads back equal, its declaration kept."""
    import pandas as pd
    import pyarrow.parquet as pq

    from qckit.core.tables import TableContract, read_table, write_table

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(500, 4)), columns=[f"original_firstorder_F{j}" for j in range(4)])
    frame["subject_id"] = [f"s{i:03d}" for i in range(500)]
    frame["site"] = rng.choice(["A", "B"], 500)
    frame["n"] = rng.integers(0, 3, 500)
    frame.loc[3, "original_firstorder_F0"] = np.nan
    out = write_table(frame, tmp_path / "t.parquet", TableContract(list(frame.columns[:4]), ["subject_id"]))
    group = pq.read_metadata(out).row_group(0)
    encodings = {group.column(i).path_in_schema: group.column(i).encodings for i in range(group.num_columns)}
    assert all("RLE_DICTIONARY" not in encodings[f"original_firstorder_F{j}"] for j in range(4))
    assert all("RLE_DICTIONARY" in encodings[c] for c in ("subject_id", "site", "n"))
    back = read_table(out)
    pd.testing.assert_frame_equal(back, frame)
    assert back.attrs["qckit_contract"]["features"] == list(frame.columns[:4])
