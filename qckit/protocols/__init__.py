"""Protocol definitions (YAML -> pydantic), matching of series to protocol entries, rules -> findings."""

from qckit.protocols.check import CheckResult, RuleResult, SeriesCheck, check_series, evaluate
from qckit.protocols.load import LoadedProtocol, ProtocolError, bundled_names, json_schema, load_protocol
from qckit.protocols.models import Condition, ExpectedSeries, Protocol, Rule

__all__ = [
    "CheckResult",
    "Condition",
    "ExpectedSeries",
    "LoadedProtocol",
    "Protocol",
    "ProtocolError",
    "Rule",
    "RuleResult",
    "SeriesCheck",
    "bundled_names",
    "check_series",
    "evaluate",
    "json_schema",
    "load_protocol",
]
