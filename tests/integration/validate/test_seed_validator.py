"""The seed validator's Python calls (seed 003) on its own rules-only config, as written:
`DataValidator("config.yaml")`, `validate_table(data, name)` twice, `_state.is_rule_completed`,
and the resets, which refuse a table or rule that is not there."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import onceflow
from onceflow.errors import ConfigError
from onceflow.validate import DataValidator, ValidationState, Validator, validate
from onceflow.validate.rules_file import load_validation_config

SEED_CONFIG = """\
version: "1.0"
pipeline:
  state_file: "pipeline_state.json"
engine:
  type: "duckdb"
  options: {max_retries: 3, retry_delay: 1.0}
tables:
  - name: "my_table"
    rules:
      - {name: "completeness_check", rule_type: "completeness", column: "customer_id"}
      - {name: "id_unique", rule_type: "uniqueness", column: "customer_id"}
  - name: "customers"
    rules:
      - {name: "id_check", rule_type: "completeness", column: "customer_id"}
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(SEED_CONFIG, encoding="utf-8")
    return path


def _data(*ids: int | None) -> pa.Table:
    return pa.table({"customer_id": pa.array(ids, pa.int64())})


def test_the_seeds_class_name_is_the_validator(config: Path) -> None:
    assert onceflow.DataValidator is DataValidator is Validator
    assert DataValidator(str(config)).rules.keys() == {"my_table", "customers"}


def test_the_seeds_calls_run_as_written_and_the_second_comes_from_the_cache(
    config: Path,
) -> None:
    validator = DataValidator(str(config))
    assert isinstance(validator._state, ValidationState)
    # never validated: nothing is completed yet
    assert not validator._state.is_rule_completed("my_table", "completeness_check")
    data = _data(1, 2, 3)
    summary1 = validator.validate_table(data, "my_table")
    if validator._state.is_rule_completed("my_table", "completeness_check"):
        summary2 = validator.validate_table(data, "my_table")
    else:
        pytest.fail("the rule's result was recorded by the validation above")
    assert summary2.total_rules == summary1.total_rules == 2
    assert summary2.data_queries == 0 and all(r.cached for r in summary2.results)
    assert validator.is_rule_completed("my_table", "id_unique")
    assert not validator.is_rule_completed("customers", "id_check")  # never validated


def test_without_data_completion_is_about_the_tables_latest_validation(config: Path) -> None:
    validator = Validator(config)
    validator.validate_table(_data(1, None), "my_table")
    assert validator.is_rule_completed("my_table", "completeness_check")
    validator.reset_rule_state("my_table", "completeness_check")
    assert not validator.is_rule_completed("my_table", "completeness_check")
    assert validator.is_rule_completed("my_table", "id_unique")
    # the latest validation is of other data: only what it recorded counts
    validator.validate_table(_data(7, 8), "my_table")
    assert validator.is_rule_completed("my_table", "completeness_check")
    assert validator.is_rule_completed("my_table", "completeness_check", _data(7, 8))
    assert not validator.is_rule_completed("my_table", "completeness_check", _data(9))
    validator.reset_table_state("my_table")
    assert not validator.is_rule_completed("my_table", "id_unique")


def test_resets_refuse_a_table_or_rule_that_is_not_configured(config: Path) -> None:
    validator = Validator(config)
    validator.validate_table(_data(1), "customers")
    with pytest.raises(ConfigError) as table:
        validator.reset_table_state("nope")
    assert str(table.value) == "table 'nope' is not in the config; tables: my_table, customers"
    with pytest.raises(ConfigError) as rule:
        validator.reset_rule_state("customers", "nope")
    assert str(rule.value) == "table customers: no rule 'nope' (rules: id_check)"
    with pytest.raises(ConfigError, match="no rule 'nope'"):
        validator._state.reset_rule_state("customers", "nope")
    assert validator.reset_rule_state("customers", "id_check") == 1
    assert validator.reset_state() == 0


def test_validation_status_lists_every_table_with_rules(config: Path) -> None:
    validator = Validator(config)
    validator.validate_table(_data(1, None), "customers")
    rows = {r["table"]: r for r in validator.validation_status()}
    assert list(rows) == ["my_table", "customers"]
    assert rows["my_table"]["status"] == "never validated"
    assert rows["customers"]["status"] == "failed"
    assert rows["customers"]["counts"]["fail"] == 1
    assert rows["customers"]["fingerprint"].startswith("memory:")


def test_a_run_date_judges_freshness_at_its_window_end_on_a_rules_only_config(
    tmp_path: Path,
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        "tables:\n  - name: t\n    rules:\n"
        "      - {name: fresh, type: freshness, column: ts, max_age: 24h}\n",
        encoding="utf-8",
    )
    pq.write_table(pa.table({"ts": [datetime(2024, 1, 9, 12)]}), tmp_path / "t.parquet")
    config, rules = load_validation_config(path)
    state = tmp_path / "s.db"
    config = config.model_copy(update={"state_url": f"sqlite:///{state}"})
    sources = {"t": str(tmp_path / "t.parquet")}
    # the window of 2024-01-09 ends at 2024-01-10 00:00 UTC: 12 hours after the newest
    dated = validate(config, "2024-01-09", sources=sources, rules=rules)
    fresh = dated.result("fresh")
    assert fresh.outcome == "pass" and fresh.observed == pytest.approx(12.0)
    assert dated.reference_time == "2024-01-10T00:00:00+00:00"
    later = validate(config, "2024-01-10", sources=sources, rules=rules)
    assert later.result("fresh").outcome == "fail"
    assert later.result("fresh").observed == pytest.approx(36.0)


def test_a_reference_path_in_a_config_is_relative_to_the_config_not_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "config.yaml").write_text(
        "tables:\n  - name: t\n    rules:\n"
        "      - {name: known, type: referential, column: c,"
        " reference: {table: parent.parquet, column: id}}\n",
        encoding="utf-8",
    )
    pq.write_table(pa.table({"id": [1, 2]}), project / "parent.parquet")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # a same-named file where the command runs must not be the one read
    pq.write_table(pa.table({"id": [1, 2, 3]}), elsewhere / "parent.parquet")
    monkeypatch.chdir(elsewhere)
    report = DataValidator(str(project / "config.yaml")).validate_table(
        pa.table({"c": [1, 2, 3]}), "t"
    )
    assert report.result("known").outcome == "fail" and report.result("known").failing_rows == 1
