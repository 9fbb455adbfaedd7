"""What the seed validator's JSON state file held, said in one phrase (both formats)."""

from __future__ import annotations

import json

from onceflow.config import config_from_dict
from onceflow.validate.seed_state import describe


def test_the_nested_format_names_each_table_and_its_completed_rules() -> None:
    state = {
        "customers": {
            "status": "completed",
            "completed_at": "2025-07-24T10:11:49.391678",
            "rules": {
                "id_check": {"status": "completed", "result": {"passed": True}},
                "email_check": {"status": "running"},
            },
            "results": {},
        },
        "orders": {"status": "failed"},
    }
    assert describe(json.dumps(state).encode()) == (
        "2 table(s): customers completed, 1 of 2 rule(s) completed; orders failed"
    )


def test_the_old_format_is_a_status_per_table() -> None:
    assert describe(b'{"table1": "completed", "table2": "failed"}') == (
        "2 table(s): table1 completed; table2 failed"
    )


def test_what_is_not_a_state_file_is_said_so_not_raised() -> None:
    assert describe(b"{not json").startswith("no JSON onceflow can read (")
    assert describe(b"[1, 2]") == "no table entries (a JSON list)"
    assert describe(b"{}") == "no tables"
    assert describe(b'{"t": 3}') == "1 table(s): t (unreadable entry)"
    many = {f"t{i}": "completed" for i in range(12)}
    assert describe(json.dumps(many).encode()).endswith("t9 completed; and 2 more")


def test_a_json_state_file_is_remembered_beside_the_store_it_becomes() -> None:
    config = config_from_dict({"pipeline": {"state_file": "state/p.json"}}, base_dir="/cfg")
    assert config.seed_state_file == "/cfg/state/p.json"
    assert config.state_url == "sqlite:////cfg/state/p.db"
    assert config.model_copy().seed_state_file == "/cfg/state/p.json"
    other = config_from_dict({"pipeline": {"state_file": "state/p.sqlite"}}, base_dir="/cfg")
    assert other.seed_state_file is None
