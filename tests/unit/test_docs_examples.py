"""The config snippets of the docs are one valid config, and the README's is too."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from onceflow.config import load_config

ROOT = Path(__file__).resolve().parents[2]


def _yaml_blocks(path: Path) -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", path.read_text("utf-8"), re.S)


def test_the_configuration_page_snippets_combine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("SHOP_PASSWORD", "CRM_PASSWORD", "ORA_PASSWORD"):
        monkeypatch.setenv(name, "pw")
    main, schedules = _yaml_blocks(ROOT / "docs" / "configuration.md")[:2]
    config = tmp_path / "onceflow.yml"
    config.write_text(main + schedules, encoding="utf-8")
    cfg = load_config(config)
    assert cfg.schedules[0].tables == ["shop.public.orders"]
    assert cfg.table("shop.public.orders").key == "shop.public.orders"


def test_the_readme_config_is_valid(tmp_path: Path) -> None:
    (config_text,) = _yaml_blocks(ROOT / "README.md")
    config = tmp_path / "onceflow.yml"
    config.write_text(config_text, encoding="utf-8")
    cfg = load_config(config)
    assert cfg.schedules[0].timezone == "America/New_York"


def test_an_unknown_key_points_to_the_configuration_page() -> None:
    from onceflow.config import config_from_dict
    from onceflow.errors import ConfigError

    with pytest.raises(
        ConfigError, match=r"unknown field \(did you mean lake\?\); .* docs/configuration\.md"
    ) as error:
        config_from_dict({"pipeline": "p", "lakke": "./lake"})
    page = re.search(r"docs/\S+\.md", str(error.value))
    assert page is not None and (ROOT / page.group(0)).is_file()


def test_the_empty_snapshot_guard_of_the_exactly_once_page_is_a_valid_table() -> None:
    import yaml

    from onceflow.config import config_from_dict

    [block] = [b for b in _yaml_blocks(ROOT / "docs" / "exactly-once.md") if "not_empty" in b]
    data = {"sources": {"shop": {"url": "sqlite:///shop.db"}}, **yaml.safe_load(block)}
    [table] = config_from_dict(data).tables
    [rule] = table.rules
    assert (rule.type, rule.stage, rule.min) == ("row_count", "pre_load", 1)  # type: ignore[union-attr]
