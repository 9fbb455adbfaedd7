"""Package faces that import their names on first use (PEP 562), so that importing a
package does not load what only some of its names need (Arrow, Delta Lake, drivers)."""

from __future__ import annotations

# not `typing.TYPE_CHECKING`: `import onceflow` imports this module, and typing costs ~20 ms
# before the console scripts can catch a Ctrl-C (type checkers read this name the same way)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


def lazy_exports(
    package: str, where: dict[str, str], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A package's `__getattr__` and `__dir__`: each name of `where` comes from its module
    on first use and is kept in the package's `namespace`."""

    def getattr_(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        import importlib  # here: `import onceflow` stays a few hundred microseconds

        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def dir_() -> list[str]:
        return sorted(set(namespace) | set(namespace.get("__all__", ())))

    return getattr_, dir_
