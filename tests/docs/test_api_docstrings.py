"""Every public function and class of the API reference (docs/api) has a docstring; the statistics cite theirs."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest

API_PAGES = Path(__file__).resolve().parents[2] / "docs" / "api"


def api_modules() -> list[str]:
    """The modules and packages the API pages render (`::: qckit.x` lines)."""
    found = []
    for page in sorted(API_PAGES.glob("*.md")):
        found += re.findall(r"^::: (qckit[\w.]*)", page.read_text(), re.M)
    return found


def public_objects(name: str) -> list[tuple[str, object]]:
    """(qualified name, object) of a module's public functions and classes, and of their public methods and
    properties: a package's `__all__` when it has one, else what the module itself defines."""
    mod = importlib.import_module(name)
    names = getattr(mod, "__all__", None)
    if names is None:
        names = [
            n
            for n, v in vars(mod).items()
            if not n.startswith("_") and getattr(v, "__module__", None) == name
        ]
    out: list[tuple[str, object]] = []
    for n in names:
        obj = getattr(mod, n)
        if not (inspect.isfunction(obj) or inspect.isclass(obj)):
            continue
        out.append((f"{name}.{n}", obj))
        if inspect.isclass(obj):
            for k, v in vars(obj).items():
                if k.startswith("_"):
                    continue
                f = v.fget if isinstance(v, property) else getattr(v, "__func__", v)
                if inspect.isfunction(f):
                    out.append((f"{name}.{n}.{k}", f))
    return out


def test_the_api_pages_name_modules():
    mods = api_modules()
    assert "qckit.metrology" in mods and "qckit.history.spc" in mods and len(mods) >= 12


def documented(obj: object) -> bool:
    """A docstring of its own: not empty, and not the signature a dataclass writes when it has none."""
    doc = (obj.__doc__ or "").strip()
    if inspect.isclass(obj) and doc.startswith(f"{obj.__name__}("):
        return False
    return bool(doc)


@pytest.mark.parametrize("module", api_modules())
def test_every_public_object_has_a_docstring(module: str):
    missing = [q for q, obj in public_objects(module) if not documented(obj)]
    assert missing == [], f"undocumented in the API reference: {missing}"


CITATION = re.compile(r"(19|20)\d\d")


def test_every_statistic_cites_its_definition():
    """The metrology functions give a formula and a reference (in their docstring or their module's)."""
    import qckit.metrology as m

    for name in m.__all__:
        obj = getattr(m, name)
        if not inspect.isfunction(obj):
            continue
        text = (obj.__doc__ or "") + (inspect.getmodule(obj).__doc__ or "")
        assert CITATION.search(text), f"qckit.metrology.{name} cites no reference"
        assert "=" in text or "sqrt" in text.lower(), f"qckit.metrology.{name} gives no formula"
