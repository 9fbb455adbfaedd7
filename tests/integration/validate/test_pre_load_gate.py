"""The pre-load gate over a catch-up: what a refusal says, what it spends of the file's
retries, and what it leaves waiting. In-process on a SQLite source and state store (the
CLI's lines are tested in tests/integration/cli/test_validate_cli.py)."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import yaml

from onceflow.config import Config, load_config
from onceflow.pipeline import run
from onceflow.state import open_store
from tests.helpers.schedule import make_project

DAYS = ["2025-01-01", "2025-01-02", "2025-01-03", "2025-01-04"]
AMOUNT_SET = {"name": "amount_set", "type": "range", "column": "amount", "min": 0}


def _project(tmp_path: Path, rule: dict[str, Any], retries: int = 1) -> Config:
    """The events table gated by `rule`, its file retried at most `retries` times; the
    second day's row 1003 has a negative amount."""
    folder = tmp_path / "project"
    path = make_project(folder, f"sqlite:///{tmp_path / 'state.db'}", days=len(DAYS))
    project = yaml.safe_load(path.read_text(encoding="utf-8"))
    project["tables"][0]["load"]["max_file_retries"] = retries
    project["tables"][0]["rules"] = [{**rule, "stage": "pre_load"}]
    path.write_text(yaml.safe_dump(project, sort_keys=False), encoding="utf-8")
    _source(folder, "UPDATE events SET amount = -1 WHERE id = 1003")
    return load_config(path)


def _source(folder: Path, statement: str) -> None:
    with closing(sqlite3.connect(folder / "source.db")) as con:
        con.execute(statement)
        con.commit()


def _retries(config: Config, day: str) -> int:
    file_id = f"src/events/{day[:4]}{day[5:7]}/{day[8:]}/sched_{day.replace('-', '')}.parquet"
    uri = str(Path(config.resolve(config.warehouse)) / "src" / "events")
    with open_store(config.state_url) as store:
        record = store.files.get(uri, file_id)
    assert record is not None
    return record.retry_count


def test_a_catch_up_gating_one_unchanged_file_spends_one_retry_and_names_the_re_extraction(
    tmp_path: Path,
) -> None:
    """Each later date's run gated the refused file again and counted an attempt: a
    4-date catch-up used up `max_file_retries` on one refusal, and the message never said
    that a corrected source changes nothing until the window is extracted again."""
    config = _project(tmp_path, AMOUNT_SET)
    assert run(config, DAYS[0]).ok
    refused = run(config, DAYS[1])
    assert refused.load is not None and not refused.ok
    error = refused.load.results[0].error or ""
    assert "pre-load rules refused the file (amount_set fail (1 failing rows))" in error
    assert (
        "To repair it, correct those rows at the source, then re-extract the window "
        "(`onceflow extract --date 2025-01-02 --tables src.events --force-reprocess`: "
        "loading again gates this same file, whatever the source holds now) and load; or, "
        "if the rule is what is wrong, fix or relax it"
    ) in error
    assert "no retry is spent" not in error  # a first refusal is an attempt
    assert _retries(config, DAYS[1]) == 1
    for waiting, day in enumerate(DAYS[2:], start=1):
        again = run(config, day)
        assert again.load is not None and not again.ok
        table = again.load.results[0]
        assert "the same file was refused by the same rules before: no retry is spent" in (
            table.error or ""
        )
        assert "gave up" not in (table.error or "")
        # the files behind it wait, in the counts and by name, as the error text says
        assert again.load.counts()["waiting"] == waiting
        assert [f.action for f in table.files][-waiting - 1 :] == ["failed"] + ["waiting"] * waiting
        assert f"({waiting} later file(s) of the table wait)" in (table.error or "")
    assert _retries(config, DAYS[1]) == 1  # max_file_retries 1: not given up
    # the repair the message gives: correct the source, re-extract the window, load
    _source(tmp_path / "project", "UPDATE events SET amount = 3 WHERE id = 1003")
    assert run(config, DAYS[1], force_reprocess=True).ok
    caught_up = run(config, DAYS[3])
    assert caught_up.ok and caught_up.load is not None
    assert caught_up.load.counts()["loaded"] == 2


def test_a_pre_load_rule_that_cannot_run_spends_no_retry_and_names_the_rule_as_the_fix(
    tmp_path: Path,
) -> None:
    broken = {"name": "amount_set", "type": "completeness", "column": "nope"}
    config = _project(tmp_path, broken, retries=0)
    for _ in range(3):
        refused = run(config, DAYS[0])
        error = refused.load.results[0].error if refused.load else None
        assert error is not None and "unknown column 'nope'" in error
        assert "a rule that cannot run is not the file's fault: no retry is spent" in error
        assert error.endswith(
            "To repair it, fix the rule in the config (its error says why it cannot run), then load"
        )
        assert _retries(config, DAYS[0]) == 0
    # max_file_retries 0, and still the fixed rule loads the file: nothing was spent
    path = tmp_path / "project" / "onceflow.yml"
    path.write_text(path.read_text(encoding="utf-8").replace("nope", "amount"), encoding="utf-8")
    assert run(load_config(path), DAYS[0]).ok


def test_a_referential_gate_refusing_one_file_again_after_its_reference_changed_spends_no_retry(
    tmp_path: Path,
) -> None:
    """A late-arriving dimension: each day's run gates the refused file again against a
    reference that grew meanwhile. The file did not change, so only its first refusal is
    an attempt; counting every one gave the file up after `max_file_retries` days, and
    the key's arrival then loaded nothing until a reset."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    reference = tmp_path / "project" / "known.parquet"
    known = [i for d in range(len(DAYS)) for i in range(d * 1000, d * 1000 + 5) if i != 1003]
    rule = {
        "name": "id_known",
        "type": "referential",
        "column": "id",
        "reference": {"table": "known.parquet", "column": "id"},
    }
    config = _project(tmp_path, rule)
    pq.write_table(pa.table({"id": known}), reference)
    assert run(config, DAYS[0]).ok
    assert not run(config, DAYS[1]).ok
    assert _retries(config, DAYS[1]) == 1
    for extra, day in enumerate(DAYS[2:], start=1):
        pq.write_table(pa.table({"id": [*known, 9000 + extra]}), reference)  # it grew
        again = run(config, day)
        error = (again.load.results[0].error or "") if again.load else ""
        assert "the gate refused this same file before" in error and "no retry is spent" in error
        assert "gave up" not in error
    assert _retries(config, DAYS[1]) == 1  # max_file_retries 1: not given up
    pq.write_table(pa.table({"id": [*known, 1003]}), reference)  # the key arrives
    caught_up = run(config, DAYS[3])
    assert caught_up.ok and caught_up.load is not None
    assert caught_up.load.counts()["loaded"] == 3
