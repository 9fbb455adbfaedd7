"""Every package's `__all__` is exactly what it exports, sorted, and every name resolves."""

from __future__ import annotations

import importlib
import types

import pytest

import onceflow


def isort_order(names: list[str]) -> list[str]:
    """The order ruff (RUF022) keeps: CONSTANTS, then Classes, then functions."""

    def key(name: str) -> tuple[int, str]:
        kind = 0 if name.isupper() else 1 if name[:1].isupper() else 2
        return kind, name

    return sorted(names, key=key)


PACKAGES = [
    "onceflow.consistency",
    "onceflow.extract",
    "onceflow.lake",
    "onceflow.load",
    "onceflow.schedule",
    "onceflow.state",
    "onceflow.validate",
    "onceflow.validate.engines",
    "onceflow.warehouse",
]


def test_the_public_face_is_small_sorted_and_resolves() -> None:
    assert onceflow.__all__ == isort_order(onceflow.__all__)
    exported = {
        name
        for name in dir(onceflow)
        if (not name.startswith("_") or name == "__version__")
        and not isinstance(getattr(onceflow, name), types.ModuleType)
    }
    assert set(onceflow.__all__) == exported - {"annotations", "TYPE_CHECKING", "Any"}
    for name in onceflow.__all__:
        assert getattr(onceflow, name) is not None, name


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = onceflow.nope  # type: ignore[attr-defined]


@pytest.mark.parametrize("package", PACKAGES)
def test_each_package_exports_exactly_its_all(package: str) -> None:
    module = importlib.import_module(package)
    exported = module.__all__
    assert exported == isort_order(exported), package
    lazy = getattr(module, "_WHERE", None)  # names imported on first use
    if lazy is not None:
        assert set(exported) == set(lazy), package
    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and name not in {"annotations", "TYPE_CHECKING", "Any"}
    }
    if lazy is not None:  # only names already used are in the module's namespace
        assert public <= set(exported), package
    else:
        assert public == set(exported), package
    for name in exported:
        assert hasattr(module, name), f"{package}.{name}"
