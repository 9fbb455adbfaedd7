"""YAML aliases are bounded: a "billion laughs" document (400 bytes) made `check` walk
435 million values, 3 GB and minutes; a recursive one would be walked forever."""

from __future__ import annotations

import itertools

import pytest

from onceflow.config import MAX_YAML_VALUES, parse_yaml
from onceflow.errors import ConfigError

LEVELS = "abcdefghi"


def _laughs(levels: int) -> str:
    lines = ["pipeline: x", 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for below, name in itertools.pairwise(LEVELS[:levels]):
        lines.append(f"{name}: &{name} [{','.join([f'*{below}'] * 9)}]")
    return "\n".join(lines) + "\n"


def test_aliases_that_expand_past_the_cap_are_refused_before_anything_walks_them() -> None:
    with pytest.raises(ConfigError) as refused:
        parse_yaml(_laughs(9), "laughs.yml")
    assert str(refused.value) == (
        f"laughs.yml: the YAML's aliases (*name) expand to more than {MAX_YAML_VALUES:,} "
        "values (at line 8, column 4): no config is that large; write the values out, or "
        "use fewer aliases of aliases"
    )


def test_a_tables_file_names_its_field_when_refused() -> None:
    with pytest.raises(ConfigError) as refused:
        parse_yaml(_laughs(9), "tables.yml", field="tables")
    assert refused.value.field == "tables"


def test_a_recursive_alias_is_refused_naming_its_place() -> None:
    with pytest.raises(ConfigError) as refused:
        parse_yaml("pipeline: x\nloop: &l [1, *l]\n", "x.yml")
    assert str(refused.value).startswith(
        "x.yml: the YAML alias at line 2, column 7 refers to a value that holds it"
    )


def test_aliases_below_the_cap_are_expanded_as_before() -> None:
    assert len(parse_yaml(_laughs(5), "x.yml")["e"]) == 9
    tables = "\n".join(f"  - {{<<: *d, table: t{i}}}" for i in range(2000))
    text = f"defaults: &d {{source: pg, extract: {{mode: full}}}}\ntables:\n{tables}\n"
    parsed = parse_yaml(text, "x.yml")
    assert parsed["tables"][1999] == {"source": "pg", "extract": {"mode": "full"}, "table": "t1999"}


def test_an_empty_document_is_none() -> None:
    assert parse_yaml("", "x.yml") is None
    assert parse_yaml("# nothing\n", "x.yml") is None
