"""House conventions that a reader relies on and that no linter checks: read from the
source, so that they hold for code written later too."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import onceflow

PACKAGE = Path(onceflow.__file__).parent


def _functions(path: Path) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def _bare_any(annotation: ast.expr | None) -> bool:
    """`x: Any`, `-> Any`, `-> Any | None`: not `dict[str, Any]` (a JSON document)."""
    if isinstance(annotation, ast.Name):
        return annotation.id == "Any"
    if isinstance(annotation, ast.BinOp):  # X | Y
        return _bare_any(annotation.left) or _bare_any(annotation.right)
    return False


# cli/run.py's progress wrapper takes either step: it is left to the change at work there;
# FittedTable passes rich's own Table options through
_ANY_ALLOWED = {("run.py", "_with_progress"), ("layout.py", "__init__")}


def test_the_cli_names_the_api_types_it_passes_around() -> None:
    """`open_pipeline() -> Any` let mypy pass `open_pipeline(c).statuss(run_idd=...)`: a
    command's call of the API is checked only when what it calls is typed."""
    untyped = []
    for path in sorted((PACKAGE / "cli").glob("*.py")):
        for function in _functions(path):
            if (path.name, function.name) in _ANY_ALLOWED:
                continue
            arguments = function.args
            every = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]
            every += [a for a in (arguments.vararg, arguments.kwarg) if a is not None]
            names = [a.arg for a in every if _bare_any(a.annotation)]
            names += ["return"] if _bare_any(function.returns) else []
            untyped += [f"cli/{path.name}:{function.lineno} {function.name}: {n}" for n in names]
    assert untyped == []


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


# seeds/extractor.py's imports of seeds/tables.py: left to the change at work there
_PRIVATE_IMPORT_ALLOWED = {"onceflow.seeds.extractor"}


def test_no_module_imports_another_modules_private_names() -> None:
    """A `_name` says "used in this module only": one shared by several modules is public
    (no underscore, a docstring), so that a change to it looks for its other users."""
    shared = []
    for path in sorted(PACKAGE.rglob("*.py")):
        importer = _module(path)
        if importer in _PRIVATE_IMPORT_ALLOWED:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ImportFrom) or node.level or node.module == importer:
                continue
            if not (node.module or "").startswith("onceflow"):
                continue
            shared += [
                f"{importer} imports {node.module}.{alias.name}"
                for alias in node.names
                if alias.name.startswith("_") and not alias.name.startswith("__")
            ]
    assert shared == []


def test_every_module_logger_is_named_by_its_module() -> None:
    """`logging.getLogger(__name__)`: a record names the module that wrote it, and a
    filter on a package (`onceflow.extract`) still takes its modules' records."""
    named = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:  # module level
            call = node.value if isinstance(node, ast.Assign | ast.AnnAssign) else None
            if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)):
                continue
            if call.func.attr != "getLogger":
                continue
            argument = call.args[0] if call.args else None
            if not (isinstance(argument, ast.Name) and argument.id == "__name__"):
                named.append(f"{_module(path)}:{node.lineno}")
    assert named == []
