"""The rules repository's contract (validation results, validations, history), on SQLite
and PostgreSQL."""

from __future__ import annotations

import json

from onceflow.state import HistoryRecord, RuleResultRecord, StatementRecord, Store


def _record(
    rule: str,
    fingerprint: str,
    *,
    version: int | None = None,
    outcome: str = "pass",
    metrics: dict[str, object] | None = None,
    table: str = "s.t",
) -> RuleResultRecord:
    return RuleResultRecord(
        pipeline="p",
        table_key=table,
        rule_name=rule,
        rule_hash=f"h-{rule}",
        fingerprint=fingerprint,
        outcome=outcome,
        result=json.dumps({"rule": rule, "outcome": outcome}),
        metrics=None if metrics is None else json.dumps(metrics),
        source_id="table-id" if version is not None else None,
        source_version=version,
    )


def test_results_are_found_by_fingerprint_and_replaced_in_place(store: Store) -> None:
    store.rules.save([_record("a", "delta:x@1"), _record("b", "delta:x@1", outcome="fail")])
    store.rules.save([_record("a", "delta:x@2")])
    found = {r.rule_name: r for r in store.rules.find("p", "s.t", "delta:x@1")}
    assert set(found) == {"a", "b"}
    assert found["b"].result_data() == {"rule": "b", "outcome": "fail"}
    store.rules.save([_record("b", "delta:x@1", outcome="pass")])
    again = store.rules.get("p", "s.t", "b", "h-b", "delta:x@1")
    assert again is not None and again.outcome == "pass"
    assert store.rules.get("p", "s.t", "b", "other-hash", "delta:x@1") is None
    assert store.rules.counts("p") == {"pass": 3}


def test_latest_states_pick_the_newest_older_version_with_metrics(store: Store) -> None:
    store.rules.save(
        [
            _record("a", "delta:x@3", version=3, metrics={"rows": 3}),
            _record("a", "delta:x@5", version=5, metrics={"rows": 5}),
            _record("a", "delta:x@9", version=9, metrics={"rows": 9}),
            _record("b", "delta:x@4", version=4),  # no metrics (an error): not a state
        ]
    )
    states = store.rules.latest_states("p", "s.t", "table-id", below_version=9)
    assert list(states) == [("a", "h-a")]
    assert states[("a", "h-a")].source_version == 5
    assert states[("a", "h-a")].metrics_data() == {"rows": 5}
    assert store.rules.latest_states("p", "s.t", "other-table", 9) == {}


def test_validations_history_and_last_per_table(store: Store) -> None:
    for number, (table, status) in enumerate(
        [("s.t", "failed"), ("s.t", "passed"), ("s.u", "warn")]
    ):
        vid = f"v{number}"
        store.rules.begin(vid, "p", table, stage="post_load", fingerprint=f"f{number}")
        store.rules.finish(
            vid,
            status,
            {"pass": 1, "fail": int(status == "failed")},
            statements=2,
            history=[HistoryRecord(vid, "a", "p", table, "pass", 1.0, 0, False, "")],
        )
    last = {v.table_key: v for v in store.rules.last_validations("p")}
    assert {k: v.status for k, v in last.items()} == {"s.t": "passed", "s.u": "warn"}
    assert last["s.t"].counts_data() == {"pass": 1, "fail": 0}
    history = store.rules.history("p", "s.t")
    assert [h.validation_id for h in history] == ["v0", "v1"]
    assert history[0].pass_rate == 1.0 and history[0].cached is False
    assert [v.validation_id for v in store.rules.validations("p", "s.t")] == ["v1", "v0"]


def test_history_of_one_data_source_leaves_out_data_checked_elsewhere(store: Store) -> None:
    # the table's own Delta data, then a staged file checked with --sources, then again
    for vid, fingerprint in [("v0", "delta:abc@1"), ("v1", "parquet:9f"), ("v2", "delta:abc@2")]:
        store.rules.begin(vid, "p", "s.t", stage="post_load", fingerprint=fingerprint)
        history = [HistoryRecord(vid, "a", "p", "s.t", "pass", 1.0, 0, False, "")]
        store.rules.finish(vid, "passed", {}, statements=1, history=history)
    own = store.rules.history("p", "s.t", source="delta:abc@")
    assert [h.validation_id for h in own] == ["v0", "v2"]
    assert [h.validation_id for h in store.rules.history("p", "s.t")] == ["v0", "v1", "v2"]


def test_reset_forgets_one_rule_one_table_or_everything(store: Store) -> None:
    store.rules.save([_record("a", "f"), _record("b", "f"), _record("a", "f", table="s.u")])
    store.rules.begin("v", "p", "s.t", stage="post_load", fingerprint="f")
    store.rules.finish(
        "v", "passed", {}, 0, [HistoryRecord("v", "a", "p", "s.t", "pass", 1.0, 0, False, "")]
    )
    assert store.rules.reset("p", "s.t", "a") == 1
    assert [r.rule_name for r in store.rules.find("p", "s.t", "f")] == ["b"]
    assert store.rules.history("p", "s.t")  # a rule's reset keeps the history
    assert store.rules.reset("p", "s.t") == 1
    assert store.rules.history("p", "s.t") == [] and store.rules.last_validations("p") == []
    assert store.rules.reset("p") == 1
    assert store.rules.counts("p") == {}


def test_prune_keeps_the_newest_fingerprints_and_validations_of_a_table(store: Store) -> None:
    for n in range(5):
        stamp = f"2026-01-0{n + 1}T00:00:00+00:00"
        store.rules.save(
            [
                RuleResultRecord(**{**vars(_record(rule, f"f{n}")), "created_at": stamp})
                for rule in ("a", "b")
            ]
        )
    store.rules.save([_record("a", "other", table="s.u")])
    for n in range(5):
        vid = f"v{n}"
        store.rules.begin(vid, "p", "s.t", stage="post_load", fingerprint=f"f{n}")
        store.rules.finish(
            vid, "passed", {}, 0, [HistoryRecord(vid, "a", "p", "s.t", "pass", 1.0, 0, False, "")]
        )
    assert store.rules.prune("p", "s.t", keep_results=2, keep_history=3) == 6
    assert [bool(store.rules.find("p", "s.t", f"f{n}")) for n in range(5)] == [
        False,
        False,
        False,
        True,
        True,
    ]
    assert store.rules.find("p", "s.u", "other")  # another table keeps its own
    assert [v.validation_id for v in store.rules.validations("p", "s.t")] == ["v4", "v3", "v2"]
    assert [h.validation_id for h in store.rules.history("p", "s.t")] == ["v2", "v3", "v4"]
    assert store.rules.prune("p", "s.t", keep_results=2, keep_history=3) == 0


def test_a_seed_state_file_is_noted_once_per_content(store: Store) -> None:
    assert store.rules.note_seed_file("p", "/cfg/s.json", "d1", "1 table(s): t completed")
    assert not store.rules.note_seed_file("p", "/cfg/s.json", "d1", "1 table(s): t completed")
    assert store.rules.note_seed_file("p", "/cfg/s.json", "d2", "changed")  # new content
    assert store.rules.note_seed_file("q", "/cfg/s.json", "d1", "another pipeline")


def test_a_quarantine_pass_is_noted_per_data_and_goes_with_its_results(store: Store) -> None:
    assert store.rules.quarantined("p", "s.t", "f1") is None
    for n in (1, 2):
        stamp = f"2026-01-0{n}T00:00:00+00:00"
        store.rules.save([RuleResultRecord(**{**vars(_record("a", f"f{n}")), "created_at": stamp})])
    store.rules.note_quarantined("p", "s.t", "f1", "rules1", "none")
    store.rules.note_quarantined("p", "s.t", "f1", "rules1", "id@0")  # replaced in place
    store.rules.note_quarantined("p", "s.t", "f2", "rules1", "id@1")
    assert store.rules.quarantined("p", "s.t", "f1") == ("rules1", "id@0")
    assert store.rules.quarantined("p", "s.u", "f1") is None
    store.rules.prune("p", "s.t", keep_results=1)  # f1's results gone: its pass with them
    assert store.rules.quarantined("p", "s.t", "f1") is None
    assert store.rules.quarantined("p", "s.t", "f2") == ("rules1", "id@1")
    store.rules.reset("p", "s.t")
    assert store.rules.quarantined("p", "s.t", "f2") is None


def _statement(digest: str, fingerprint: str, sql: str, table: str = "s.t") -> StatementRecord:
    return StatementRecord("p", table, fingerprint, digest, sql)


def test_statements_are_kept_once_per_table_and_data_and_go_with_their_results(
    store: Store,
) -> None:
    for n in (1, 2):
        stamp = f"2026-01-0{n}T00:00:00+00:00"
        record = RuleResultRecord(**{**vars(_record("a", f"f{n}")), "created_at": stamp})
        store.rules.save([record], [_statement("d1", f"f{n}", "SELECT 1")])
    # a second result naming it again changes nothing; one on other data has its own
    store.rules.save([_record("b", "f2")], [_statement("d1", "f2", "SELECT 'other'")])
    store.rules.save([], [_statement("d2", "f2", "SELECT 2")])
    store.rules.save([_record("a", "f1", table="s.u")], [_statement("d1", "f1", "U", "s.u")])
    assert store.rules.statements("p", "s.t", "f1") == {"d1": "SELECT 1"}
    assert store.rules.statements("p", "s.t", "f2") == {"d1": "SELECT 1", "d2": "SELECT 2"}
    assert store.rules.statements("p", "s.u", "f1") == {"d1": "U"}
    assert store.rules.statements("p", "s.t", "f3") == {}
    store.rules.prune("p", "s.t", keep_results=1)  # f1's results gone: its statements too
    assert store.rules.statements("p", "s.t", "f1") == {}
    assert set(store.rules.statements("p", "s.t", "f2")) == {"d1", "d2"}
    assert store.rules.reset("p", "s.t", "a") == 1  # one rule's: the data's others name them
    assert set(store.rules.statements("p", "s.t", "f2")) == {"d1", "d2"}
    store.rules.reset("p", "s.t")
    assert store.rules.statements("p", "s.t", "f2") == {}
    assert store.rules.statements("p", "s.u", "f1") == {"d1": "U"}
    store.rules.reset("p")
    assert store.rules.statements("p", "s.u", "f1") == {}
