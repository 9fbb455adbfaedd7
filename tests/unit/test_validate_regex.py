"""Regex rules run on RE2 (DuckDB's engine): its syntax is accepted, its classes apply."""

from __future__ import annotations

import pyarrow as pa
import pytest

from onceflow.rules import Regex
from onceflow.validate import Validator

WORDS = pa.table({"s": ["abc", "é", "日本", "a b"]})


def failing(pattern: str) -> int | None:
    rules = {"t": [{"name": "r", "type": "regex", "column": "s", "pattern": pattern}]}
    result = Validator(rules_by_table=rules).validate_table(WORDS, "t").result("r")
    assert result.outcome in ("pass", "fail"), result.message
    return result.failing_rows


def test_re2_syntax_python_lacks_is_accepted_and_runs() -> None:
    assert failing(r"^\pL+$") == 1  # Unicode letters: only "a b" fails
    assert failing(r"^\p{Han}+$") == 3
    assert failing(r"c\z") == 3


def test_re2_word_class_is_ascii_as_documented() -> None:
    assert failing(r"^\w+$") == 3  # "é" and "日本" are not ASCII word characters


@pytest.mark.parametrize(
    ("pattern", "why"),
    [("^(a", "missing \\)"), (r"\pQ", "invalid character class range")],
)
def test_a_pattern_re2_refuses_is_refused_when_the_rule_is_read(pattern: str, why: str) -> None:
    with pytest.raises(ValueError, match=f"bad regex .*{why}"):
        Regex(name="r", column="s", pattern=pattern)
