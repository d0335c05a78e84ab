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
    assert Measurement("piu", math.nan, "%", "m", limit=lim).passed is False
    assert Measurement("snr", 200.0, "", "m").passed is None
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


def test_history_migration_2_to_3_rekeys_and_keeps_old_keys(tmp_path: Path):
    """A version-2 store with an old-style key (full manufacturer) is re-keyed; the old key still resolves."""
    from sqlalchemy import create_engine, text

    from qckit.core.errors import DuplicateSessionError
    from qckit.history.store import SCHEMA_VERSION, SessionRecord, open_store

    url = f"sqlite:///{tmp_path / 'v2.sqlite'}"
    eng = create_engine(url)
    with eng.begin() as c:
        c.execute(text("CREATE TABLE qckit_schema (version INTEGER NOT NULL)"))
        c.execute(text("INSERT INTO qckit_schema VALUES (2)"))
        c.execute(text("CREATE TABLE scanners (id INTEGER PRIMARY KEY, scanner_key VARCHAR(200) NOT NULL UNIQUE, "
                       "manufacturer VARCHAR(200), model VARCHAR(200), serial VARCHAR(200), station VARCHAR(200), "
                       "field_strength_t FLOAT)"))  # fmt: skip
        c.execute(text("CREATE TABLE sessions (id INTEGER PRIMARY KEY, scanner_id INTEGER NOT NULL REFERENCES "
                       "scanners(id), session_date TIMESTAMP NOT NULL, recorded_at TIMESTAMP NOT NULL, phantom "
                       "VARCHAR(100) NOT NULL, qckit_version VARCHAR(50) NOT NULL, input_uids TEXT NOT NULL, "
                       "protocol_status VARCHAR(20), protocol_findings TEXT, acceptance BOOLEAN NOT NULL, note TEXT, "
                       "CONSTRAINT uq_session_inputs UNIQUE (scanner_id, session_date, input_uids))"))  # fmt: skip
        c.execute(text("CREATE TABLE measurements (id INTEGER PRIMARY KEY, session_id INTEGER NOT NULL REFERENCES "
                       "sessions(id) ON DELETE CASCADE, name VARCHAR(100) NOT NULL, value FLOAT NOT NULL, unit "
                       "VARCHAR(20) NOT NULL, method TEXT NOT NULL, slice INTEGER, limit_low FLOAT, limit_high "
                       "FLOAT, limit_text TEXT, passed BOOLEAN, CONSTRAINT uq_measurement_name UNIQUE "
                       "(session_id, name))"))  # fmt: skip
        c.execute(text("INSERT INTO scanners VALUES (1, 'Philips_Medical_Systems-Ingenia-42', "
                       "'Philips Medical Systems', 'Ingenia', '42', 'MR1', 1.5)"))  # fmt: skip
        c.execute(text("INSERT INTO sessions VALUES (1, 1, '2025-01-01 00:00:00', '2025-01-01 00:00:00', 'acr', "
                       "'0.1', '[\"1.2.3\"]', 'pass', '[]', false, NULL)"))  # fmt: skip
        c.execute(text("INSERT INTO measurements (id, session_id, name, value, unit, method) VALUES "
                       "(1, 1, 'piu', 91.0, '%', 'old')"))  # fmt: skip
    eng.dispose()
    with open_store(url) as st:
        assert st.schema_version() == SCHEMA_VERSION
        assert list(st.history("Philips-Ingenia-42")["value"]) == [91.0]
        assert list(st.history("Philips_Medical_Systems-Ingenia-42")["value"]) == [91.0]
        sc = st.scanners().set_index("scanner_key")
        assert sc["alias_of"]["Philips_Medical_Systems-Ingenia-42"] == "Philips-Ingenia-42"
        with pytest.raises(
            DuplicateSessionError, match="already in the QC history"
        ):  # its series were filled in
            st.record_session(SessionRecord({"manufacturer": "Philips", "model": "Ingenia", "serial": "42"},
                                            dt.datetime(2025, 2, 1), "acr", "t", ["1.2.3"], []))  # fmt: skip
