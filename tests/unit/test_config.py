from __future__ import annotations

import re
from pathlib import Path

import pytest

from onceflow.config import TableConfig, config_from_dict, load_config, parse_yaml
from onceflow.errors import ConfigError
from onceflow.redact import redact

BASE = {
    "sources": {"shop": {"url": "postgresql://app:pw@localhost/shop"}},
    "tables": [{"source": "shop", "table": "public.orders"}],
}


def _with_table(**table: object) -> dict[str, object]:
    return {**BASE, "tables": [{"source": "shop", **table}]}


def test_defaults_give_a_working_embedded_config() -> None:
    config = config_from_dict(BASE, base_dir="/x")
    assert config.state_url == "sqlite:////x/.onceflow/state.db"
    assert config.resolve(config.lake) == "/x/lake"
    assert config.tables[0].key == "shop.public.orders"
    assert config.tables[0].extract.mode == "full"


def test_unknown_source_names_the_field_and_the_fix() -> None:
    with pytest.raises(ConfigError, match=r"tables\[0\]\.source: unknown source 'nope'"):
        config_from_dict({**BASE, "tables": [{"source": "nope", "table": "t"}]})


def test_incremental_without_cursor_says_how_to_fix_it() -> None:
    with pytest.raises(ConfigError, match=r"tables\[0\]\.extract: .*add `cursor: <column>`"):
        config_from_dict(_with_table(table="t", extract={"mode": "incremental"}))


def test_misspelt_field_is_named() -> None:
    with pytest.raises(ConfigError, match=r"tables\[0\]\.extrct: unknown field"):
        config_from_dict(_with_table(table="t", extrct={"mode": "full"}))


def test_bad_mode_lists_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"tables\[0\]\.extract\.mode: invalid value 'daily'"):
        config_from_dict(_with_table(table="t", extract={"mode": "daily"}))


def test_table_and_query_are_exclusive_and_query_needs_a_name() -> None:
    with pytest.raises(ConfigError, match="exactly one of"):
        config_from_dict(_with_table(table="t", query="select 1"))
    with pytest.raises(ConfigError, match="needs a `name:`"):
        config_from_dict(_with_table(query="select 1"))


def test_unknown_timezone_is_rejected() -> None:
    with pytest.raises(ConfigError, match="timezone: unknown time zone 'Mars/Olympus'"):
        config_from_dict({**BASE, "timezone": "Mars/Olympus"})


def test_duplicate_table_is_rejected() -> None:
    tables = [{"source": "shop", "table": "t"}, {"source": "shop", "table": "t"}]
    with pytest.raises(ConfigError, match="listed twice"):
        config_from_dict({**BASE, "tables": tables})


def test_scd2_needs_a_primary_key() -> None:
    with pytest.raises(ConfigError, match=r"tables\[0\]\.load: strategy scd2 needs a primary key"):
        config_from_dict(_with_table(table="t", load={"strategy": "scd2"}))


@pytest.mark.parametrize("hard_deletes", ["close", "new_record"])
def test_scd2_hard_deletes_with_incremental_extracts_is_refused_naming_the_field(
    hard_deletes: str,
) -> None:
    # an incremental file lacks every unchanged key: each would be taken for deleted
    load = {"strategy": "scd2", "primary_key": ["id"], "hard_deletes": hard_deletes}
    incremental = {"mode": "incremental", "cursor": "updated_at"}
    with pytest.raises(ConfigError) as refused:
        config_from_dict(_with_table(table="t", extract=incremental, load=load))
    assert refused.value.field == "tables[0].load.hard_deletes"
    assert f"{hard_deletes} needs full extracts" in str(refused.value)
    assert "mode: full" in str(refused.value) and "hard_deletes: ignore" in str(refused.value)
    # full extracts, or incremental ones that ignore absent keys, are fine
    config_from_dict(_with_table(table="t", load=load))
    config_from_dict(
        _with_table(table="t", extract=incremental, load={**load, "hard_deletes": "ignore"})
    )


# every (strategy, option) pair the strategy does not read, with what the message says to
# use instead
IGNORED_OPTIONS = [
    ("merge", {"hard_deletes": "close"}, "`delete_column: <column>`"),
    ("merge", {"hard_deletes": "ignore"}, "`delete_column: <column>`"),
    ("merge", {"tracking_columns": ["a"]}, "`strategy: scd2`"),
    ("merge", {"late_rows": "reject"}, "remove it"),
    ("merge", {"effective_from_column": "f"}, "`strategy: scd2`"),
    ("merge", {"effective_to_column": "t"}, "`strategy: scd2`"),
    ("merge", {"is_current_column": "c"}, "`strategy: scd2`"),
    ("merge", {"is_deleted_column": "d"}, "`strategy: scd2`"),
    ("scd2", {"delete_column": "gone"}, "`hard_deletes: close`"),
    ("append", {"primary_key": ["id"]}, "`strategy: merge`"),
    ("append", {"validity_column": "u"}, "`strategy: merge` or `scd2`"),
    ("append", {"delete_column": "gone"}, "`strategy: merge`"),
    ("append", {"tracking_columns": ["a"]}, "`strategy: scd2`"),
    ("append", {"hard_deletes": "close"}, "`strategy: scd2`"),
    ("append", {"late_rows": "skip"}, "remove it"),
    ("append", {"is_current_column": "c"}, "`strategy: scd2`"),
    ("overwrite", {"primary_key": ["id"]}, "`strategy: merge`"),
    ("overwrite", {"validity_column": "u"}, "`strategy: merge` or `scd2`"),
    ("overwrite", {"delete_column": "gone"}, "`strategy: merge`"),
    ("overwrite", {"tracking_columns": ["a"]}, "`strategy: scd2`"),
    ("overwrite", {"hard_deletes": "close"}, "gone from the table already"),
    ("overwrite", {"late_rows": "reject"}, "remove it"),
    ("overwrite", {"effective_to_column": "t"}, "`strategy: scd2`"),
]


@pytest.mark.parametrize(("strategy", "option", "instead"), IGNORED_OPTIONS)
def test_a_load_option_the_strategy_would_ignore_is_refused_naming_field_and_fix(
    strategy: str, option: dict[str, object], instead: str
) -> None:
    # a valid key without effect under the strategy is a pipeline that silently does not
    # do what it says (a merge with `hard_deletes: close` never deletes)
    key = {"primary_key": ["id"]} if strategy in ("merge", "scd2") else {}
    load = {"strategy": strategy, **key, **option}
    with pytest.raises(ConfigError) as refused:
        config_from_dict(_with_table(table="t", load=load), origin="onceflow.yml")
    [name] = option
    message = str(refused.value)
    assert refused.value.field == f"tables[0].load.{name}"
    assert message.startswith(f"onceflow.yml: tables[0].load.{name}: strategy {strategy} ")
    assert "would ignore it" in message and instead in message
    assert "\n" not in message


def test_every_load_option_a_strategy_reads_is_accepted_and_kept() -> None:
    scd2 = {
        "strategy": "scd2",
        "primary_key": ["id"],
        "tracking_columns": ["a"],
        "validity_column": "u",
        "hard_deletes": "new_record",
        "late_rows": "reject",
        "effective_from_column": "f",
        "effective_to_column": "t",
        "is_current_column": "c",
        "is_deleted_column": "d",
    }
    merge = {
        "strategy": "merge",
        "primary_key": ["id"],
        "delete_column": "g",
        "validity_column": "u",
    }
    every = {"target": "x/y", "max_file_retries": 1, "widen": True}
    # `is_deleted_column` names the column an earlier `new_record` made, under any mode
    closing = {**scd2, "hard_deletes": "close"}
    for load in (scd2, merge, {"strategy": "append"}, {"strategy": "overwrite"}, closing):
        given = {**load, **every}
        read = config_from_dict(_with_table(table="t", load=given)).tables[0].load
        assert {name: getattr(read, name) for name in given} == given


def test_an_ignored_option_given_in_a_seed_spelling_is_named_as_written() -> None:
    table = {"source": "shop", "table_name": "t", "loading_strategy": "merge"}
    table |= {"primary_keys": ["id"], "scd2_current_flag_column": "current"}
    with pytest.raises(ConfigError) as refused:
        config_from_dict({**BASE, "tables": [table]}, origin="onceflow.yml")
    assert str(refused.value).startswith(
        "onceflow.yml: tables[0].scd2_current_flag_column: strategy merge would ignore it"
    )


@pytest.mark.parametrize("tracked", [[], ["id"]])
def test_tracking_columns_that_can_never_change_are_refused(tracked: list[str]) -> None:
    # an empty list (or only key columns) would never make a version after the first
    load = {"strategy": "scd2", "primary_key": ["id"], "tracking_columns": tracked}
    with pytest.raises(ConfigError) as refused:
        config_from_dict(_with_table(table="t", load=load))
    assert refused.value.field == "tables[0].load.tracking_columns"
    assert "no key would get a new version after its first" in str(refused.value)
    assert "leave `tracking_columns` out" in str(refused.value)


@pytest.mark.parametrize("field", ["primary_key", "tracking_columns"])
def test_a_column_listed_twice_is_refused(field: str) -> None:
    load = {"strategy": "scd2", "primary_key": ["id"], field: ["id", "id"]}
    if field == "tracking_columns":
        load[field] = ["a", "a"]
    with pytest.raises(ConfigError) as refused:
        config_from_dict(_with_table(table="t", load=load))
    assert refused.value.field == f"tables[0].load.{field}"
    assert "is listed twice; list each column once" in str(refused.value)


def test_env_interpolation_and_secret_is_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOP_PASSWORD", "s3cr3t-value")
    data = {**BASE, "sources": {"shop": {"url": "postgresql://app:${SHOP_PASSWORD}@h/db"}}}
    config = config_from_dict(data)
    assert config.sources["shop"].url == "postgresql://app:s3cr3t-value@h/db"
    assert "s3cr3t-value" not in redact(f"failed: password was s3cr3t-value in {data}")


def test_a_printed_config_shows_no_resolved_password(monkeypatch: pytest.MonkeyPatch) -> None:
    """A user prints or logs the config, or an error reporter captures it: its URLs hold
    the resolved ${PASSWORD}, a space in it included."""
    monkeypatch.setenv("SHOP_PASSWORD", "s3cr3t value")
    data = {
        **BASE,
        "state": "postgresql://app:${SHOP_PASSWORD}@h/state",
        "sources": {"shop": {"url": "postgresql://app:${SHOP_PASSWORD}@h/db"}},
    }
    config = config_from_dict(data)
    shown = [repr(config), str(config), repr(config.sources), f"{config.sources['shop']}"]
    assert not [text for text in shown if "s3cr3t" in text]
    assert "postgresql://app:***@h/db" in repr(config)
    assert config.sources["shop"].url == "postgresql://app:s3cr3t value@h/db"  # still usable


def test_missing_env_var_names_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOPE_VAR", raising=False)
    data = {**BASE, "sources": {"shop": {"url": "postgresql://app:${NOPE_VAR}@h/db"}}}
    config = config_from_dict(data)  # a source's URL is resolved when it is connected
    with pytest.raises(ConfigError, match=r"sources\.shop\.url: environment variable NOPE_VAR"):
        config.source_url("shop")


def test_env_default_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOPE_VAR", raising=False)
    data = {**BASE, "lake": "${NOPE_VAR:-/data/lake}"}
    assert config_from_dict(data).lake == "/data/lake"


def test_missing_file_and_bad_yaml_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found; pass --config"):
        load_config(tmp_path / "absent.yml")
    bad = tmp_path / "onceflow.yml"
    bad.write_text("sources: {shop: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_config(bad)


def test_a_repeated_yaml_key_is_refused_naming_both_places(tmp_path: Path) -> None:
    doubled = tmp_path / "onceflow.yml"
    doubled.write_text(
        "tables:\n  - name: orders\n    rules: [{name: a, type: completeness, column: id}]\n"
        "    rules: [{name: b, type: completeness, column: id}]\n"
    )
    with pytest.raises(ConfigError) as refused:
        load_config(doubled)
    assert str(refused.value) == (
        f"{doubled}: key 'rules' appears twice in one mapping, at line 3, column 5 and at "
        "line 4, column 5; the second would silently replace the first: keep one (merge "
        "their contents if both are wanted)"
    )
    with pytest.raises(ConfigError, match="key 'min' appears twice"):
        parse_yaml("rule: {type: range, min: 0, min: 5}", "x.yml")
    # a merge key may override what it brings in: that is what it is for
    merged = parse_yaml("base: &b {a: 1, c: 3}\nuse:\n  <<: *b\n  a: 2\n", "x.yml")
    assert merged["use"] == {"a": 2, "c": 3}


def test_lookup_by_key_or_name() -> None:
    config = config_from_dict(BASE)
    assert config.table("public.orders").key == "shop.public.orders"
    with pytest.raises(ConfigError, match="is not in the config"):
        config.table("shop.missing")


def test_looking_up_each_of_300_tables_computes_each_key_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`table()` was a scan of every table per call: a lookup per table (as load, status
    and validate make) was 90,000 `key` computations at 300 tables, 2M at 1,000."""
    names = [f"t{i:03d}" for i in range(300)]
    config = config_from_dict(
        {**BASE, "tables": [{"source": "shop", "table": name} for name in names]}
    )
    computed = 0
    key = TableConfig.key

    def counted(table: TableConfig) -> str:
        nonlocal computed
        computed += 1
        return str(key.fget(table))  # type: ignore[attr-defined]

    monkeypatch.setattr(TableConfig, "key", property(counted))
    for name in names:
        assert config.table(name).display_name == name
        assert config.table(f"shop.{name}").display_name == name
    assert computed == len(names)  # the index's, once per table


def test_table_lookup_keeps_ambiguity_and_follows_other_tables() -> None:
    """A name two tables answer to stays ambiguous; a copy with other tables finds its
    own (the copy carries the original's index along); asking changes no equality."""
    two = {
        "sources": {"a": {"url": "sqlite:///x.db"}, "b": {"url": "sqlite:///x.db"}},
        "tables": [{"source": "a", "table": "b.c"}, {"source": "b", "table": "c"}],
    }
    config = config_from_dict(two)
    untouched = config_from_dict(two)
    assert config.table("a.b.c").key == "a.b.c" and config.table("c").key == "b.c"
    with pytest.raises(ConfigError, match=re.escape("'b.c' is ambiguous; tables: a.b.c, b.c")):
        config.table("b.c")
    assert config == untouched and config.model_dump() == untouched.model_dump()
    copy = config.model_copy(update={"tables": config.tables[:1]})
    assert copy.table("b.c").key == "a.b.c"
    with pytest.raises(ConfigError, match=re.escape("'c' is not in the config")):
        copy.table("c")


def test_only_secret_fields_mask_their_env_values(monkeypatch: pytest.MonkeyPatch) -> None:
    """A plain ${REGION} in a query stays visible, so a changed value is a changed query."""
    monkeypatch.setenv("REGION_X", "east-region-x")
    monkeypatch.setenv("PW_X", "pw-value-x9")
    data = {
        "sources": {"shop": {"url": "postgresql://app:${PW_X}@h/db"}},
        "tables": [
            {"source": "shop", "name": "q", "query": "select * from t where r = '${REGION_X}'"}
        ],
    }
    config = config_from_dict(data)
    assert config.tables[0].query == "select * from t where r = 'east-region-x'"
    assert redact("east-region-x pw-value-x9") == "east-region-x ***"


@pytest.mark.parametrize("spelling", ["wh/../wh/x", "./wh/x", "wh/./x/", "/x/warehouse/wh/x"])
def test_two_spellings_of_one_target_location_are_refused(spelling: str) -> None:
    tables = [
        {"source": "shop", "table": "a", "load": {"target": "wh/x"}},
        {"source": "shop", "table": "b", "load": {"target": spelling}},
    ]
    data = {**BASE, "warehouse": "/x/warehouse", "tables": tables}
    with pytest.raises(ConfigError, match=r"tables\[1\]\.load\.target: .*same Delta table"):
        config_from_dict(data, base_dir="/x")


def test_a_target_location_and_its_load_lock_have_no_dot_segments() -> None:
    from onceflow.load import config_targets

    tables = [{"source": "shop", "table": "a", "load": {"target": "wh/../wh/x"}}]
    config = config_from_dict({**BASE, "warehouse": "/x/warehouse", "tables": tables})
    [target] = config_targets(config)
    assert target.uri == "/x/warehouse/wh/x"
    assert target.lock_name == "load:/x/warehouse/wh/x"
    assert config.resolve_target("s3://bucket/wh/./a/../x") == "s3://bucket/wh/x"
    assert config.resolve_target("s3://bucket/wh/x/") == "s3://bucket/wh/x/"  # no dots: as given


def test_a_table_inside_another_tables_folder_or_quarantine_is_refused() -> None:
    # a table's folder holds only its own files: the consistency repair would take a
    # nested table's data files for garbage of the outer one and remove them
    nested = {
        **BASE,
        "tables": [
            {"source": "shop", "table": "a", "load": {"target": "raw/a"}},
            {"source": "shop", "table": "b", "load": {"target": "raw/a/nested"}},
        ],
    }
    with pytest.raises(
        ConfigError, match=r"tables\[1\]\.load\.target: the Delta table of 'shop.b'"
    ):
        config_from_dict(nested)
    beside = {
        **nested,
        "tables": [
            nested["tables"][0],
            {"source": "shop", "table": "b", "load": {"target": "raw/a-b"}},
        ],
    }
    assert len(config_from_dict(beside).tables) == 2
    clash = {
        **BASE,
        "tables": [
            {"source": "shop", "table": "a", "load": {"target": "raw/a"}, "quarantine": True},
            {"source": "shop", "table": "b", "load": {"target": "raw/a_quarantine"}},
        ],
    }
    with pytest.raises(ConfigError, match=r"tables\[0\]\.quarantine: 'shop.a' quarantines into"):
        config_from_dict(clash)


@pytest.mark.parametrize("state", ["mongodb://x/y", "redis://h:6379/0", "state.db"])
def test_an_unsupported_state_store_is_refused_when_the_config_is_read(state: str) -> None:
    """It passed `check`; `run` then failed when it opened the store, with exit 1."""
    with pytest.raises(ConfigError) as caught:
        config_from_dict({**BASE, "state": state})
    assert caught.value.field == "state" and caught.value.exit_code == 2
    assert "state: unsupported state store" in str(caught.value)
    assert "sqlite:///" in str(caught.value) and "postgresql://" in str(caught.value)


def test_supported_state_stores_are_accepted() -> None:
    for state in (
        "sqlite:///.onceflow/state.db",
        "postgresql://u@h:5432/db",
        "postgres://u@h/db",
        "postgresql+psycopg://u@h/db",
    ):
        assert config_from_dict({**BASE, "state": state}).state == state


@pytest.mark.parametrize("field", ["state", "source"])
def test_a_port_that_is_not_a_number_is_refused_naming_the_field(field: str) -> None:
    url = "postgresql://app:s3cr3t@db:notaport/shop"
    data = (
        {**BASE, "state": url} if field == "state" else {**BASE, "sources": {"shop": {"url": url}}}
    )
    with pytest.raises(ConfigError) as caught:
        config_from_dict(data)
    named = "state" if field == "state" else "sources.shop.url"
    assert f"{named}: the port 'notaport' is not a port number" in str(caught.value)
    assert "s3cr3t" not in str(caught.value)


def test_a_source_url_without_a_scheme_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"sources\.shop\.url: expected a URL such as"):
        config_from_dict({**BASE, "sources": {"shop": {"url": "db-host/shop"}}})


def test_a_sqlalchemy_driver_that_is_not_installed_is_named_with_the_urls_that_work() -> None:
    """`mysql://` with `reader: sqlalchemy` failed at run with `No module named 'MySQLdb'`."""
    source = {"url": "mysql://etl:pw@crm:3306/crm", "reader": "sqlalchemy"}
    config = config_from_dict({**BASE, "sources": {"shop": source}})
    problem = config.sources["shop"].driver_problem() or ""
    assert "'MySQLdb'" in problem
    assert "mysql+pymysql://" in problem and "reader: auto" in problem
    # a driver installed with onceflow, or another reader: no problem
    for url, reader in (("mysql+pymysql://etl@crm/crm", "sqlalchemy"), (source["url"], "auto")):
        fine = config_from_dict({**BASE, "sources": {"shop": {"url": url, "reader": reader}}})
        assert fine.sources["shop"].driver_problem() is None


def test_a_reader_that_does_not_read_the_dialect_is_refused_by_check() -> None:
    """`reader: adbc` on MySQL read through ConnectorX, `connectorx` on PostgreSQL through
    ADBC, without a word: the setting said one reader and another ran."""
    cases = {
        ("mysql+pymysql://etl@crm/crm", "adbc"): "`reader: auto` (connectorx)",
        ("postgresql://etl@db/shop", "connectorx"): "`reader: auto` (adbc)",
        ("sqlite:///shop.db", "connectorx"): "`reader: auto` (adbc)",
        ("oracle+oracledb://etl@ora/x", "adbc"): "`reader: auto` or",
    }
    for (url, reader), fix in cases.items():
        config = config_from_dict({**BASE, "sources": {"shop": {"url": url, "reader": reader}}})
        with pytest.raises(ConfigError) as caught:
            config.check_sources()
        assert f"sources.shop.reader: reader {reader!r} does not read" in str(caught.value)
        assert fix in str(caught.value)
    for url in ("postgresql+psycopg2://etl@db/shop", "postgresql+pg8000://etl@db/shop"):
        odd = config_from_dict({**BASE, "sources": {"shop": {"url": url, "reader": "sqlalchemy"}}})
        assert "through psycopg (3) only" in (odd.sources["shop"].reader_problem() or "")
    for url, reader in (
        ("postgresql://etl@db/shop", "sqlalchemy"),
        ("postgresql+psycopg://etl@db/shop", "sqlalchemy"),
        ("postgresql+psycopg2://etl@db/shop", "auto"),
        ("mysql+pymysql://etl@crm/crm", "connectorx"),
        ("postgresql://etl@db/shop", "adbc"),
        ("sqlite:///shop.db", "adbc"),
    ):
        fine = config_from_dict({**BASE, "sources": {"shop": {"url": url, "reader": reader}}})
        assert fine.sources["shop"].reader_problem() is None


def test_a_misspelt_key_of_a_rule_says_which_key_was_meant() -> None:
    rule = {"name": "amount_positive", "type": "range", "column": "amount", "min": 0}
    with pytest.raises(ConfigError) as caught:
        config_from_dict(_with_table(table="t", rules=[{**rule, "inclusiv": False}]))
    assert "rule 'amount_positive': inclusiv: unknown field (did you mean inclusive?)" in str(
        caught.value
    )
    assert "check its spelling" in str(caught.value)


def test_a_misspelt_key_is_reported_before_the_required_key_it_stands_for() -> None:
    """`ur:` showed `sources.shop.url: required field is missing (and 1 more problem)`."""
    with pytest.raises(ConfigError) as caught:
        config_from_dict({**BASE, "sources": {"shop": {"ur": "sqlite:///x.db"}}})
    assert caught.value.field == "sources.shop.ur"
    assert "sources.shop.ur: unknown field (did you mean url?)" in str(caught.value)


@pytest.mark.parametrize(
    ("key", "meant"),
    [("workerz", "workers"), ("retry.max_atempts", "max_attempts"), ("load.stratgy", "strategy")],
)
def test_a_misspelt_key_at_any_level_names_the_key_meant(key: str, meant: str) -> None:
    parent, _, name = key.rpartition(".")
    if parent == "load":
        data = _with_table(table="t", load={name: "append"})
    elif parent:
        data = {**BASE, parent: {name: 3}}
    else:
        data = {**BASE, name: 2}
    with pytest.raises(ConfigError, match=rf"unknown field \(did you mean {meant}\?\)"):
        config_from_dict(data)


def test_a_value_of_the_wrong_type_says_what_is_expected_with_an_example() -> None:
    """Pydantic's own text said `Input should be a valid list` / `... datetime or date,
    input is too short`, with no example."""
    load = {"strategy": "scd2", "primary_key": ["id"], "tracking_columns": "name"}
    with pytest.raises(ConfigError) as caught:
        config_from_dict(_with_table(table="t", load=load))
    assert "tracking_columns: expected a list, e.g. [a, b], got 'name': write [name]" in str(
        caught.value
    )
    for start in ("2025-01", "2025"):
        schedule = {"name": "nightly", "cron": "0 2 * * *", "start": start}
        with pytest.raises(ConfigError) as caught:
            config_from_dict({**BASE, "schedules": [schedule]})
        assert (
            "schedules[nightly].start: expected a date and time with its offset, e.g. "
            f"2025-01-01T00:00:00+00:00, got '{start}'"
        ) in str(caught.value)
    with pytest.raises(ConfigError, match=r"workers: expected a whole number, e.g. 3, got 'two'"):
        config_from_dict({**BASE, "workers": "two"})


def test_a_source_url_variable_is_needed_only_when_the_source_is_connected(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`status`, `load` and `validate-consistency` refused to run without `${PGPW}`, a
    source password they never use."""
    monkeypatch.delenv("OF_TEST_PGPW", raising=False)
    monkeypatch.delenv("OF_TEST_CRM_URL", raising=False)
    sources = {
        "shop": {"url": "postgresql://app:${OF_TEST_PGPW}@db:5432/shop"},
        "crm": {"url": "${OF_TEST_CRM_URL}"},
    }
    config = config_from_dict({**BASE, "sources": sources}, origin="onceflow.yml")
    with pytest.raises(ConfigError) as caught:
        config.source_url("shop")
    assert str(caught.value) == (
        "onceflow.yml: sources.shop.url: environment variable OF_TEST_PGPW is not set; "
        "export it or write ${OF_TEST_PGPW:-default}"
    )
    assert caught.value.field == "sources.shop.url" and caught.value.exit_code == 2

    monkeypatch.setenv("OF_TEST_PGPW", "s3cr3t-pw")
    monkeypatch.setenv("OF_TEST_CRM_URL", "mysql://etl@crm:3306/crm")
    assert config.source_url("shop") == "postgresql://app:s3cr3t-pw@db:5432/shop"
    assert redact("connecting with s3cr3t-pw") == "connecting with ***"
    crm = config.source("crm")
    assert crm.dialect == "mysql" and crm.url == "mysql://etl@crm:3306/crm"
    # the URL a variable makes is checked as a written one is
    monkeypatch.setenv("OF_TEST_CRM_URL", "mysql://etl@crm:port/crm")
    with pytest.raises(ConfigError, match=r"^onceflow.yml: sources.crm.url: the port 'port'"):
        config.source("crm")


def test_a_variable_of_any_other_field_is_still_needed_when_the_config_is_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OF_TEST_LAKE", raising=False)
    with pytest.raises(ConfigError) as caught:
        config_from_dict({**BASE, "lake": "${OF_TEST_LAKE}"}, origin="onceflow.yml")
    assert str(caught.value).startswith(
        "onceflow.yml: lake: environment variable OF_TEST_LAKE is not set"
    )
    assert caught.value.field == "lake"


def test_null_cursor_is_fail_by_default_and_checked_like_every_key() -> None:
    extract = {"mode": "incremental", "cursor": "ts"}
    config = config_from_dict(_with_table(table="t", extract=extract))
    assert config.tables[0].extract.null_cursor == "fail"
    skip = config_from_dict(_with_table(table="t", extract={**extract, "null_cursor": "skip"}))
    assert skip.tables[0].extract.null_cursor == "skip"
    with pytest.raises(ConfigError, match=r"null_cursr: unknown field \(did you mean null_cursor"):
        config_from_dict(_with_table(table="t", extract={**extract, "null_cursr": "skip"}))
    with pytest.raises(ConfigError, match=r"null_cursor: .*'fail' or 'skip'"):
        config_from_dict(_with_table(table="t", extract={**extract, "null_cursor": "include"}))


def test_settle_is_a_duration() -> None:
    assert config_from_dict(BASE).settle_seconds == 0
    assert config_from_dict({**BASE, "settle": "1h30m"}).settle_seconds == 5400
    assert config_from_dict({**BASE, "settle": 0}).settle_seconds == 0
    with pytest.raises(ConfigError, match=r"settle: .*invalid duration 'two hours'"):
        config_from_dict({**BASE, "settle": "two hours"})


def test_settle_takes_days_as_freshness_max_age_does() -> None:
    assert config_from_dict({**BASE, "settle": "1d"}).settle_seconds == 86_400
    assert config_from_dict({**BASE, "settle": "1d12h"}).settle_seconds == 129_600
    assert config_from_dict({**BASE, "settle": "1w"}).settle_seconds == 604_800
    assert config_from_dict({**BASE, "settle": "30d"}).settle_seconds == 30 * 86_400


@pytest.mark.parametrize("value", [99_999_999_999, "31d", "800h"])
def test_settle_beyond_30_days_is_refused_when_the_config_is_read(value: object) -> None:
    """99999999999 passed `check`, then crashed extraction with OverflowError."""
    with pytest.raises(ConfigError, match=r"settle: .* is more than 30 days"):
        config_from_dict({**BASE, "settle": value})


@pytest.mark.parametrize("value", [True, False])
def test_settle_refuses_a_boolean(value: bool) -> None:
    """`settle: true` was read as the number 1: one minute."""
    with pytest.raises(ConfigError, match=r"settle: invalid duration (True|False)"):
        config_from_dict({**BASE, "settle": value})


@pytest.mark.parametrize(
    ("extract", "named"),
    [
        ({"mode": "full", "null_cursor": "skip"}, "null_cursor"),
        ({"mode": "full", "null_cursor": "fail"}, "null_cursor"),
        ({"mode": "full", "cursor": "ts"}, "cursor"),
        ({"cursor": "ts"}, "cursor"),
    ],
)
def test_cursor_options_on_a_full_extract_are_refused(extract: dict, named: str) -> None:
    """A full extract reads no window: `null_cursor` and `cursor` were accepted and
    ignored (and `{cursor: ts}` without a mode read the whole table every run)."""
    with pytest.raises(
        ConfigError,
        match=rf"tables\[0\]\.extract: mode full.* would ignore `{named}`: set `mode: incremental`",
    ):
        config_from_dict(_with_table(table="t", extract=extract))
    # `cursor: null` names no column: nothing is ignored
    config_from_dict(_with_table(table="t", extract={"mode": "full", "cursor": None}))


@pytest.mark.parametrize("password", ["Conf1ictPw", "Conf1ict Pw"], ids=["plain", "with-a-space"])
@pytest.mark.parametrize(
    "seed",
    [{"checkpoint_path": "./ck"}, {"pipeline": {"name": "p", "state_file": "./s.db"}}],
    ids=["checkpoint_path", "pipeline.state_file"],
)
def test_a_seed_state_spelling_in_conflict_with_state_never_quotes_its_password(
    password: str, seed: dict[str, object]
) -> None:
    """The error itself holds no secret: `str(error)` in the Python API, a traceback
    under --debug, and a password a pattern cannot delimit (a space) all show it."""
    state = f"postgresql://app:{password}@db.example:5432/onceflow"
    with pytest.raises(ConfigError) as caught:
        config_from_dict({**BASE, "state": state, **seed})
    message = str(caught.value)
    assert "the same setting as `state`" in message
    assert password not in message and "Pw" not in message
    assert "postgresql://app:***@db.example:5432/onceflow" in message


def test_a_bad_port_after_a_password_holding_a_slash_quotes_no_piece_of_it() -> None:
    """A URL parser ends the authority at the password's '/' and takes `Sl4sh` for the
    port: the message quotes the port after the host instead, never a piece of it."""
    with pytest.raises(ConfigError) as caught:
        config_from_dict({**BASE, "state": "postgresql://app:Sl4sh/Pw@db:abc/x"})
    message = str(caught.value)
    assert "Sl4sh" not in message and "Pw" not in message
    assert "state: the port 'abc' is not a port number" in message


def test_a_source_written_as_a_url_string_is_refused_without_quoting_it() -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_dict({**BASE, "sources": {"shop": "postgresql://app:Str1ngPw@h/db"}})
    assert "sources.shop: expected a mapping" in str(caught.value)
    assert "Str1ngPw" not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "schedules:\n  - name: nightly\n    cron: '0 2 * * *'\n    start: 2025-04-31\n",
            "x.yml: schedules[nightly].start: '2025-04-31' at line 4, column 12 is not a "
            "valid date (YYYY-MM-DD) or date and time (day is out of range for month): write "
            "a valid one, or quote it to keep it as text",
        ),
        (
            "- shop.orders\n- 2025-02-30\n",
            "x.yml: entry 2: '2025-02-30' at line 2, column 3 is not a valid date",
        ),
        (
            "workers: !!int abc\n",
            "x.yml: workers: 'abc' at line 1, column 10 is not a valid whole number",
        ),
        ("tables:\n  - {x: [1, 2025-13-01]}\n", "x.yml: tables[0].x[1]: '2025-13-01'"),
    ],
    ids=["impossible-date", "tables-file-entry", "bad-int-tag", "nested"],
)
def test_a_yaml_scalar_that_is_not_of_its_type_names_field_line_and_value(
    text: str, message: str
) -> None:
    """PyYAML's constructors raise a bare ValueError (`day is out of range for month`):
    it was an unexpected error, exit 1, naming neither the file nor the line."""
    with pytest.raises(ConfigError) as caught:
        parse_yaml(text, "x.yml")
    assert str(caught.value).startswith(message)


def test_a_config_file_without_tables_is_refused_but_a_config_built_without_one_is_not(
    tmp_path: Path,
) -> None:
    empty = tmp_path / "onceflow.yml"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"tables: the config lists no tables \(the file is"):
        load_config(empty)
    # a standalone load's or a status's config, with no file, has no tables by design
    assert config_from_dict({}).tables == []
    # as has the config of a rules-only file (the seed validator's), whose rules name tables
    from onceflow.validate import load_validation_config

    rules_only = tmp_path / "rules.yml"
    rules_only.write_text(
        "tables:\n  - name: orders\n    rules: [{name: a, type: completeness, column: id}]\n",
        encoding="utf-8",
    )
    config, rules = load_validation_config(rules_only)
    assert config.tables == [] and list(rules) == ["orders"]


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("postgressql://u@h:5432/db", "dialect 'postgressql'"),
        ("postgresql+psycopg3://u@h:5432/db", "driver 'psycopg3'"),
        ("mysql+pymsql://u@h/db", "driver 'pymsql'"),
    ],
    ids=["dialect", "pg-driver", "mysql-driver"],
)
def test_a_misspelt_dialect_or_driver_is_refused_when_the_config_is_read(
    url: str, named: str
) -> None:
    """`check` said "config ok"; the first run failed each table with SQLAlchemy's
    NoSuchModuleError, or libpq's `missing "=" after ...` (ADBC got the suffixed URL)."""
    with pytest.raises(ConfigError) as caught:
        config_from_dict({**BASE, "sources": {"shop": {"url": url}}})
    message = str(caught.value)
    assert message.startswith("config: sources.shop.url: ")
    assert named in message and "(did you mean " in message


def test_an_unknown_dialect_is_left_to_check_when_it_is_no_typo() -> None:
    """A host that only loads or reports need not have a source's dialect package; the
    check of the source (`onceflow check`, its extraction) refuses it."""
    config = config_from_dict({**BASE, "sources": {"shop": {"url": "foodb://u@h/db"}}})
    problem = config.sources["shop"].driver_problem() or ""
    assert "'foodb', which neither SQLAlchemy nor an installed package provides" in problem
    weird = config_from_dict({**BASE, "sources": {"shop": {"url": "postgresql+zz://u@h/db"}}})
    assert "driver 'zz', which is no driver of postgresql" in (
        weird.sources["shop"].driver_problem() or ""
    )


def test_the_known_dialects_and_drivers_are_sqlalchemys() -> None:
    import importlib

    from onceflow.dialects import SQLALCHEMY_DIALECTS

    for dialect in ("postgresql", "mysql", "sqlite", "oracle", "mssql"):
        module = importlib.import_module(f"sqlalchemy.dialects.{dialect}")
        drivers = {n for n in dir(module) if hasattr(getattr(module, n), "dialect")} - {"base"}
        assert set(SQLALCHEMY_DIALECTS[dialect]) == drivers, dialect


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://u:p@h:5432/db",
        "postgresql+asyncpg://u:p@h:5432/db",
        "postgres+psycopg2://u:p@h:5432/db",
        "postgres://u:p@h:5432/db",
    ],
    ids=["psycopg", "asyncpg", "postgres-psycopg2", "postgres"],
)
def test_the_adbc_url_is_libpqs_whatever_driver_the_url_names(url: str) -> None:
    from onceflow.extract.early import adbc_url

    assert adbc_url(url) == "postgresql://u:p@h:5432/db"


@pytest.mark.parametrize(
    "raw", [b"\xff\xfep\x00:\x00 \x00x\x00", b"lake: caf\xe9\n"], ids=["utf-16", "latin-1"]
)
def test_a_config_that_is_not_utf8_is_named_with_the_fix(tmp_path: Path, raw: bytes) -> None:
    """It was `unexpected UnicodeDecodeError`, exit 1, without the file's name."""
    path = tmp_path / "onceflow.yml"
    path.write_bytes(raw)
    with pytest.raises(ConfigError, match=r"onceflow\.yml: not UTF-8 text \(byte 0x.. at offset"):
        load_config(path)


def test_a_config_path_that_is_a_folder_is_called_one(tmp_path: Path) -> None:
    """It said "not found" for a folder that is there."""
    with pytest.raises(ConfigError, match="is a folder, not a file") as caught:
        load_config(tmp_path)
    assert "did you mean" not in str(caught.value)
    (tmp_path / "onceflow.yml").write_text("tables: []\n")
    with pytest.raises(ConfigError, match=r"did you mean .*onceflow\.yml\?"):
        load_config(tmp_path)


@pytest.mark.parametrize(
    ("field", "value", "shown"),
    [
        ("lake", "${NOPE LAKE}", "'${NOPE LAKE}' is not a variable reference"),
        ("lake", "./x/${1DIR}/y", "'${1DIR}' is not a variable reference"),
        ("warehouse", "${UNCLOSED", "'${UNCLOSED' is not a variable reference"),
    ],
    ids=["space", "digit", "unclosed"],
)
def test_a_malformed_variable_reference_is_refused_naming_the_field(
    field: str, value: str, shown: str
) -> None:
    """It was kept as text: a lake folder literally named `${NOPE LAKE}`."""
    with pytest.raises(ConfigError) as caught:
        config_from_dict({**BASE, field: value})
    assert str(caught.value).startswith(f"config: {field}: {shown}: write ${{NAME}}")
    assert caught.value.field == field


def test_a_malformed_reference_in_a_url_quotes_nothing_of_it() -> None:
    url = "postgresql://app:Ref${ss Pw@h/db"
    with pytest.raises(ConfigError) as caught:
        config_from_dict({**BASE, "sources": {"shop": {"url": url}}})
    message = str(caught.value)
    assert "sources.shop.url: a '${' that is not a variable reference" in message
    assert "ss Pw" not in message and "%24" in message


@pytest.mark.parametrize(
    ("strategy", "option"),
    [
        ("merge", {"primary_key": ["id", "_batch_id"]}),
        ("merge", {"delete_column": "_source_file"}),
        ("merge", {"validity_column": "_load_timestamp"}),
        ("scd2", {"tracking_columns": ["a", "_batch_id"]}),
        ("scd2", {"effective_from_column": "_load_timestamp"}),
        ("scd2", {"is_deleted_column": "_source_file"}),
    ],
)
def test_a_load_option_naming_an_audit_column_is_refused(
    strategy: str, option: dict[str, object]
) -> None:
    load = {"strategy": strategy, "primary_key": ["id"], **option}
    with pytest.raises(ConfigError) as refused:
        config_from_dict(_with_table(table="t", load=load), origin="onceflow.yml")
    [name] = option
    assert refused.value.field == f"tables[0].load.{name}"
    message = str(refused.value)
    assert "is one of onceflow's audit columns (_source_file, _load_timestamp, _batch_id)" in (
        message
    )
    assert message.endswith("name another column")
