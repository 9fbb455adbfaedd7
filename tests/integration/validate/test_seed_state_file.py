"""The seed validator's JSON state file: reported once, never served as results, and left
untouched (docs/validate.md, "The seed's JSON state file")."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pyarrow as pa
import pytest

from onceflow.validate import Validator

CONFIG = """\
version: "1.0"
pipeline: {state_file: "pipeline_state.json"}
tables:
  - name: "customers"
    rules:
      - {name: "id_check", rule_type: "completeness", column: "customer_id"}
"""
SEED_STATE = {
    "customers": {
        "status": "completed",
        "completed_at": "2025-07-24T10:11:49.391678",
        "rules": {
            "id_check": {
                "status": "completed",
                "result": {"rule_name": "id_check", "passed": True, "success_rate": 1.0},
            }
        },
    }
}


def _said(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "onceflow.validate.seed_state" and r.levelno == logging.INFO
    ]


def test_the_seed_state_file_is_said_once_its_rules_run_again_and_it_is_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="onceflow")
    (tmp_path / "config.yaml").write_text(CONFIG)
    seed_file = tmp_path / "pipeline_state.json"
    seed_file.write_text(json.dumps(SEED_STATE))
    os.utime(seed_file, (1_700_000_000, 1_700_000_000))
    before = seed_file.read_bytes()

    validator = Validator(tmp_path / "config.yaml")
    (line,) = _said(caplog)
    assert line.startswith(
        f"{seed_file}: the seed validator's state file holds 1 table(s): customers "
        "completed, 1 of 1 rule(s) completed. Its entries name no data version"
    )
    assert "those rules run again" in line and "The file is left as it is." in line
    # its "completed" is no result: the rule runs on the data
    assert not validator.is_rule_completed("customers", "id_check")
    report = validator.validate_table(pa.table({"customer_id": [1, None]}), "customers")
    assert report.result("id_check").outcome == "fail" and not report.result("id_check").cached

    caplog.clear()
    Validator(tmp_path / "config.yaml")  # seen: not said again
    assert _said(caplog) == []
    assert seed_file.read_bytes() == before and seed_file.stat().st_mtime == 1_700_000_000

    seed_file.write_text(json.dumps({"customers": "completed"}))  # the seed wrote it again
    Validator(tmp_path / "config.yaml")
    (changed,) = _said(caplog)
    assert "holds 1 table(s): customers completed." in changed


def test_no_seed_state_file_says_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="onceflow")
    (tmp_path / "config.yaml").write_text(CONFIG)
    Validator(tmp_path / "config.yaml")
    assert _said(caplog) == [] and not (tmp_path / "pipeline_state.json").exists()
