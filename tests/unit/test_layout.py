"""The layout holds by itself: imports flow one way, no step imports another, no cycles."""

from __future__ import annotations

from pathlib import Path

import onceflow
from tests.helpers.layout import violations

PACKAGE = Path(onceflow.__file__).parent


def _plant(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "onceflow"
    for name, text in {"__init__.py": "", **files}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        for parent in path.relative_to(root).parents:
            (root / parent / "__init__.py").touch()
        path.write_text(text)
    return root


def test_onceflow_follows_the_import_rule() -> None:
    assert violations(PACKAGE) == []


def test_a_step_importing_another_step_is_reported(tmp_path: Path) -> None:
    root = _plant(
        tmp_path,
        {
            "load/loader.py": "from onceflow.extract.paths import output_path\n",
            "extract/paths.py": "output_path = 1\n",
        },
    )
    assert violations(root) == [
        "onceflow.load.loader imports onceflow.extract.paths: a sibling of its own layer"
    ]


def test_an_import_of_a_higher_layer_is_reported_even_inside_a_function(tmp_path: Path) -> None:
    root = _plant(
        tmp_path,
        {
            "state/store.py": "def f():\n    from onceflow.pipeline import run\n",
            "pipeline.py": "run = 1\n",
        },
    )
    assert violations(root) == ["onceflow.state.store imports onceflow.pipeline: a higher layer"]


def test_an_import_cycle_is_reported(tmp_path: Path) -> None:
    root = _plant(
        tmp_path,
        {
            "cli/a.py": "from onceflow.cli import b\n",
            "cli/b.py": "def f():\n    from onceflow.cli.a import x\n",
        },
    )
    assert violations(root) == ["import cycle: onceflow.cli.a -> onceflow.cli.b"]


def test_a_module_outside_every_layer_is_reported(tmp_path: Path) -> None:
    root = _plant(tmp_path, {"stray.py": "x = 1\n"})
    assert violations(root) == ["onceflow.stray: not in a layer (add 'stray' to RANKS)"]


def test_consistency_reaching_into_a_steps_module_is_reported_and_its_face_is_not(
    tmp_path: Path,
) -> None:
    root = _plant(
        tmp_path,
        {
            "consistency/fixes.py": (
                "from onceflow.load import reload_file\n"
                "def f():\n    from onceflow.load.loader import apply_step\n"
            ),
            "load/__init__.py": "from onceflow.load.loader import reload_file\n",
            "load/loader.py": "apply_step = reload_file = 1\n",
        },
    )
    assert violations(root) == [
        "onceflow.consistency.fixes imports onceflow.load.loader: a step's module, not its face"
    ]


def test_a_top_level_module_that_spans_the_steps_is_no_base_module(tmp_path: Path) -> None:
    root = _plant(
        tmp_path,
        {"status.py": "from onceflow.load import load_status\n", "load/__init__.py": ""},
    )
    assert violations(root) == ["onceflow.status: not in a layer (add 'status' to RANKS)"]
