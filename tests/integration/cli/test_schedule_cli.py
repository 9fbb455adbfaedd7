"""The schedule commands as a user runs them: preview, bad schedules, backfill, up, status."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from onceflow.state import open_store
from tests.helpers.cli import run_cli
from tests.helpers.schedule import make_project


def _project(tmp_path: Path, **schedule: object) -> Path:
    # no tick of the real clock inside a test (`up` would run one job more): it starts in
    # 2999 unless a test gives its own start; backfill and trigger are not held to it
    entry = {
        "name": "nightly",
        "cron": "30 2 * * *",
        "timezone": "America/New_York",
        "start": "2999-01-01T00:00:00-05:00",
        **schedule,
    }
    return make_project(
        tmp_path / "p",
        f"sqlite:///{tmp_path / 'state.db'}",
        schedules=[entry],
        extra={"timezone": "America/New_York"},
    )


def test_preview_shows_what_dst_does(tmp_path: Path) -> None:
    config = _project(tmp_path)
    out = run_cli(
        "schedule",
        "preview",
        "nightly",
        "--config",
        str(config),
        "--from",
        "2025-03-08T12:00:00",
        "--count",
        "3",
        "--json",
    )
    assert out.returncode == 0, out.stderr
    ticks = json.loads(out.stdout)
    assert [t["local"] for t in ticks] == [
        "2025-03-09T03:00:00-04:00",  # 02:30 does not exist that night
        "2025-03-10T02:30:00-04:00",
        "2025-03-11T02:30:00-04:00",
    ]
    assert [t["window_hours"] for t in ticks] == [24.0, 23.0, 24.0]
    assert ticks[1]["run_date"] == "2025-03-09" and ticks[1]["tick_utc"].endswith("+00:00")
    table = run_cli("schedule", "preview", "nightly", "--config", str(config), "--count", "2")
    assert table.returncode == 0 and "window (run date)" in table.stdout


def test_a_bad_schedule_is_one_line_naming_schedule_and_field(tmp_path: Path) -> None:
    config = _project(tmp_path)
    data = yaml.safe_load(config.read_text())
    cases = {
        "cron": ("0 25 * * *", "schedules[nightly].cron: invalid cron expression"),
        "timezone": ("Mars/Base", "schedules[nightly].timezone: unknown time zone"),
        "priority": (0, "schedules[nightly].priority: must be between 1"),
        "tables": (["nope"], "schedules[nightly].tables: unknown table 'nope'"),
        "retry": ({"max_retries": -2}, "schedules[nightly].retry.max_retries: must be between"),
    }
    for key, (value, message) in cases.items():
        bad = {**data, "schedules": [{**data["schedules"][0], key: value}]}
        config.write_text(yaml.safe_dump(bad))
        out = run_cli("check", "--config", str(config))
        assert out.returncode == 2, (key, out.stdout)
        assert message in out.stderr and out.stderr.count("\n") == 1, out.stderr


def test_preview_of_an_unknown_schedule_names_the_known_ones(tmp_path: Path) -> None:
    out = run_cli("schedule", "preview", "weekly", "--config", str(_project(tmp_path)))
    assert out.returncode == 2
    assert "schedule 'weekly' is not in the config (schedules: nightly)" in out.stderr


def test_backfill_twice_then_up_until_idle_then_status(tmp_path: Path) -> None:
    config = str(_project(tmp_path, tenant="acme"))
    first = run_cli(
        "backfill", "--from", "2025-01-02", "--to", "2025-01-04", "-c", config, "--json"
    )
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["created"] == ["2025-01-02", "2025-01-03", "2025-01-04"]
    second = run_cli("backfill", "--from", "2025-01-02", "--to", "2025-01-04", "-c", config)
    assert "0 date(s) queued, 0 requeued, 3 unchanged" in second.stdout
    up = run_cli("up", "--until-idle", "--concurrency", "2", "-c", config)
    assert up.returncode == 0, up.stderr
    assert "workers: 3 completed, 0 failed" in up.stdout
    status = run_cli("status", "--tenant", "acme", "-c", config)
    assert status.returncode == 0, status.stderr
    assert (
        "3 COMPLETED" in status.stdout
        and "last success: sched/backfill 2025-01-04" in status.stdout
    )
    assert "next run: sched/nightly" in status.stdout
    # the queue line shows what the docs promise: completed and failed jobs, and waits
    (queue,) = [line for line in status.stdout.splitlines() if "queue:" in line]
    assert "0 queued (0 due), 0 running, 3 completed, 0 failed" in queue
    assert "waiting now: none" in queue
    assert re.search(r"waited before start: avg \d+\.\ds, max \d+\.\ds", queue), queue


def test_status_of_a_mistyped_tenant_is_refused_naming_the_known_ones(tmp_path: Path) -> None:
    config = str(_project(tmp_path, tenant="acme"))
    status = run_cli("status", "--tenant", "acmee", "-c", config)
    assert status.returncode == 2
    assert status.stdout == "" and status.stderr.count("\n") == 1
    assert "--tenant 'acmee'" in status.stderr and "known tenants: acme" in status.stderr
    # a configured tenant before its first run is no typo: zeros, and a queue line
    fresh = run_cli("status", "--tenant", "acme", "-c", config)
    assert fresh.returncode == 0, fresh.stderr
    assert "  queue: 0 queued (0 due), 0 running, 0 completed, 0 failed;" in fresh.stdout


def test_backfill_names_the_flag_of_a_bad_date(tmp_path: Path) -> None:
    config = str(_project(tmp_path))
    for args, flag, value in (
        (("--from", "x", "--to", "2025-01-04"), "--from", "x"),
        (("--from", "2025-01-02", "--to", "y"), "--to", "y"),
    ):
        out = run_cli("backfill", *args, "-c", config)
        assert out.returncode == 2
        assert out.stderr.startswith(f"error: {flag}: invalid date '{value}'"), out.stderr


def test_sigterm_finishes_the_current_run_and_stops_claiming(tmp_path: Path) -> None:
    import signal
    import time

    from onceflow.state import open_store
    from tests.helpers.cli import spawn

    config = str(_project(tmp_path))
    assert (
        run_cli("backfill", "--from", "2025-01-02", "--to", "2025-01-03", "-c", config).returncode
        == 0
    )
    gate = tmp_path / "gate"
    worker = spawn(
        "worker", "-c", config, "--json", env={"ONCEFLOW_PAUSE_AT": f"worker_after_start:{gate}"}
    )
    deadline = time.monotonic() + 60
    while not Path(f"{gate}.reached").exists():
        assert worker.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    worker.send_signal(signal.SIGTERM)  # mid-run
    time.sleep(0.3)
    gate.touch()
    out, err = worker.communicate(timeout=120)
    assert worker.returncode == 0, err
    report = json.loads(out)
    assert (report["claimed"], report["completed"]) == (1, 1)  # finished it, claimed no more
    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    assert sorted(r.state for r in store.scheduled_runs.find()) == ["COMPLETED", "PENDING"]
    assert store.queue.length() == 1
    store.close()


def test_the_demo_runs_its_nightly_schedule_with_up(tmp_path: Path) -> None:
    assert run_cli("init", str(tmp_path / "demo")).returncode == 0
    up = run_cli("up", "--until-idle", "--json", cwd=tmp_path / "demo")
    assert up.returncode == 0, up.stderr
    result = json.loads(up.stdout)
    assert result["scheduler"]["recorded"] == 3  # catch_up: {max: 3}
    assert result["worker"]["completed"] == 3 and result["worker"]["failed"] == 0
    status = run_cli("status", "--tenant", "default", "--json", cwd=tmp_path / "demo")
    summary = json.loads(status.stdout)
    assert summary["counts"]["COMPLETED"] == 3 and summary["next_run"]["schedule"] == "nightly"


def test_runs_list_show_cancel_retry_as_an_operator_uses_them(tmp_path: Path) -> None:
    config = str(_project(tmp_path))
    assert (
        run_cli("backfill", "--from", "2025-01-02", "--to", "2025-01-03", "-c", config).returncode
        == 0
    )
    listed = run_cli("runs", "list", "--json", "-c", config)
    assert listed.returncode == 0, listed.stderr
    runs = {r["run_date"]: r for r in json.loads(listed.stdout)}
    assert [r["state"] for r in runs.values()] == ["PENDING", "PENDING"]
    first = runs["2025-01-02"]["id"]

    cancel = run_cli("runs", "cancel", first, "-c", config)
    assert cancel.returncode == 0 and f"cancelled: {first} (was PENDING)" in cancel.stdout
    again = run_cli("runs", "cancel", first, "-c", config)
    assert again.returncode != 0
    assert again.stderr.count("\n") == 1 and "is CANCELLED" in again.stderr
    busy = run_cli("runs", "retry", runs["2025-01-03"]["id"], "-c", config)
    assert busy.returncode != 0 and "is PENDING: it will run" in busy.stderr

    retry = run_cli("runs", "retry", first, "-c", config)
    assert retry.returncode == 0, retry.stderr
    assert f"queued again: {first} 2025-01-02 (was CANCELLED)" in retry.stdout
    assert run_cli("up", "--until-idle", "-c", config).returncode == 0

    table = run_cli("runs", "list", "--state", "COMPLETED", "-c", config)
    assert table.stdout.splitlines()[0].split()[:3] == ["run", "id", "pipeline/schedule"]
    assert sum("COMPLETED" in line for line in table.stdout.splitlines()) == 2
    show = run_cli("runs", "show", first, "-c", config)
    assert show.returncode == 0, show.stderr
    assert f"run {first}: sched/backfill 2025-01-02 - COMPLETED" in show.stdout
    assert "PENDING -> CANCELLED (cancelled)" in show.stdout
    assert "CANCELLED -> PENDING (reprocess (retry) by hand)" in show.stdout
    unknown = run_cli("runs", "show", "nope", "-c", config)
    assert unknown.returncode != 0 and "not in the state store" in unknown.stderr


def test_runs_list_shows_a_cancelled_failure_plainly_as_cancelled(tmp_path: Path) -> None:
    config = str(_project(tmp_path))
    assert (
        run_cli("backfill", "--from", "2025-01-02", "--to", "2025-01-02", "-c", config).returncode
        == 0
    )
    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    (run,) = store.scheduled_runs.find()
    store.scheduled_runs.transition(run.id, "PENDING", "RUNNING")
    store.scheduled_runs.transition(
        run.id,
        "RUNNING",
        "FAILED",
        error="blocked: the earlier window 2025-01-01 failed",
        values={"error_type": "BlockedRunError", "error_types": '["BlockedRunError"]'},
    )
    store.close()
    before = run_cli("runs", "list", "-c", config)
    assert "BlockedRunError: blocked: the earlier window" in before.stdout

    assert run_cli("runs", "cancel", run.id, "-c", config).returncode == 0
    listed = run_cli("runs", "list", "-c", config)
    (line,) = [x for x in listed.stdout.splitlines() if x.startswith(run.id)]
    assert "CANCELLED" in line and line.rstrip().endswith("cancelled by hand")
    assert "BlockedRunError" not in listed.stdout and "None" not in line
    show = run_cli("runs", "show", run.id, "-c", config)
    assert "  error:        cancelled by hand" in show.stdout
    assert "RUNNING -> FAILED - blocked: the earlier window" in show.stdout  # history keeps it


def test_status_of_a_scheduled_runs_id_points_at_runs_show(tmp_path: Path) -> None:
    config = str(_project(tmp_path))
    assert (
        run_cli("backfill", "--from", "2025-01-02", "--to", "2025-01-02", "-c", config).returncode
        == 0
    )
    (run,) = json.loads(run_cli("runs", "list", "--json", "-c", config).stdout)
    assert run["run_id"] == run["id"]  # the name runs retry and schedule list give it
    status = run_cli("status", "--run-id", run["id"], "-c", config)
    assert status.returncode == 1 and status.stderr.count("\n") == 1
    assert f"--run-id {run['id']} is a scheduled run" in status.stderr
    assert f"`onceflow runs show {run['id']}` shows it" in status.stderr
    assert "not in the state store" not in status.stderr


def test_pause_list_and_resume_and_the_scheduler_says_what_is_paused(tmp_path: Path) -> None:
    config = str(_project(tmp_path))
    pause = run_cli("schedule", "pause", "nightly", "--reason", "db upgrade", "-c", config)
    assert pause.returncode == 0, pause.stderr
    assert "paused: sched/nightly; no ticks are recorded until" in pause.stdout
    again = run_cli("schedule", "pause", "nightly", "-c", config)
    assert again.returncode == 0 and "was already paused" in again.stdout

    scheduler = run_cli("scheduler", "--once", "-c", config)
    assert scheduler.returncode == 0, scheduler.stderr
    assert "0 tick(s) recorded" in scheduler.stdout
    assert re.search(
        r"paused: sched/nightly since \S+ \(db upgrade\); no ticks recorded", scheduler.stdout
    )

    listed = run_cli("schedule", "list", "-c", config)
    assert listed.returncode == 0, listed.stderr
    row = listed.stdout.splitlines()[1].split()
    assert row[:5] == ["sched/nightly", "30", "2", "*", "*"] and "paused" in row
    assert "onceflow schedule resume nightly" in listed.stdout
    (item,) = json.loads(run_cli("schedule", "list", "--json", "-c", config).stdout)
    assert (item["paused"], item["pause_reason"], item["next_tick_utc"]) == (
        True,
        "db upgrade",
        None,
    )

    resume = run_cli("schedule", "resume", "nightly", "-c", config)
    assert resume.returncode == 0, resume.stderr
    assert "resumed: sched/nightly; ticks missed while paused: catch_up: latest" in resume.stdout
    (item,) = json.loads(run_cli("schedule", "list", "--json", "-c", config).stdout)
    assert item["paused"] is False and item["next_tick_local"].endswith(("-05:00", "-04:00"))
    skip = run_cli("schedule", "resume", "nightly", "--skip-missed", "-c", config)
    assert skip.returncode == 0 and "is not paused; nothing changed" in skip.stdout


def test_trigger_twice_says_the_run_exists_its_state_and_how_to_run_it_again(
    tmp_path: Path,
) -> None:
    config = str(_project(tmp_path))
    first = run_cli("schedule", "trigger", "nightly", "--date", "2025-01-03", "-c", config)
    assert first.returncode == 0, first.stderr
    run_id = re.search(r"queued: run (\w+) of sched/nightly for 2025-01-03", first.stdout)
    assert run_id, first.stdout
    pending = run_cli("schedule", "trigger", "nightly", "--date", "2025-01-03", "-c", config)
    assert pending.returncode == 0
    assert f"exists: run {run_id[1]} of sched/nightly for 2025-01-03 is PENDING" in pending.stdout
    assert run_cli("runs", "cancel", run_id[1], "-c", config).returncode == 0
    cancelled = run_cli(
        "schedule", "trigger", "nightly", "--date", "2025-01-03", "--json", "-c", config
    )
    data = json.loads(cancelled.stdout)
    assert data["run_id"] == data["id"] == run_id[1]
    assert (data["created"], data["state"], data["schedule"]) == (
        False,
        "CANCELLED",
        "nightly:manual",
    )
    text = run_cli("schedule", "trigger", "nightly", "--date", "2025-01-03", "-c", config)
    assert f"to run it again: onceflow runs retry {run_id[1]}" in text.stdout

    future = run_cli("schedule", "trigger", "nightly", "--date", "2999-01-01", "-c", config)
    assert future.returncode == 2 and future.stderr.count("\n") == 1
    assert "--date 2999-01-01: its window ends at" in future.stderr


def test_runs_purge_says_what_would_go_and_deletes_with_yes(tmp_path: Path) -> None:
    import sqlite3

    config = str(_project(tmp_path))
    assert (
        run_cli("backfill", "--from", "2025-01-02", "--to", "2025-01-04", "-c", config).returncode
        == 0
    )
    assert run_cli("up", "--until-idle", "-c", config).returncode == 0
    with sqlite3.connect(tmp_path / "state.db") as db:
        db.execute("UPDATE scheduled_runs SET ended_at = '2020-01-01T00:00:00+00:00'")
        db.execute("UPDATE jobs SET finished_at = 1577836800")
    dry = run_cli("runs", "purge", "--older-than", "30", "-c", config)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.startswith("would purge (dry run; --yes deletes): 2 run(s) (2 COMPLETED)")
    assert "kept: 1 latest run of its schedule" in dry.stdout
    done = run_cli("runs", "purge", "--older-than", "30", "--yes", "--json", "-c", config)
    report = json.loads(done.stdout)
    assert (report["deleted"], report["total_runs"], report["jobs"]) == (True, 2, 2)
    assert len(json.loads(run_cli("runs", "list", "--json", "-c", config).stdout)) == 1
    bad = run_cli("runs", "purge", "--older-than", "0", "-c", config)
    assert bad.returncode == 2
    # in onceflow's words, not the option parser's ("Input should be greater than ...")
    assert bad.stderr.strip() == (
        "error: --older-than: expected a number of days above 0 (0.5 is 12 hours), got 0"
    )


def _paused_in_a_run(tmp_path: Path, *command: str) -> tuple[object, Path]:
    """`onceflow COMMAND` over a backfill of two days, paused inside the first run."""
    import time

    from tests.helpers.cli import spawn

    config = str(_project(tmp_path))
    backfill = run_cli("backfill", "--from", "2025-01-02", "--to", "2025-01-03", "-c", config)
    assert backfill.returncode == 0, backfill.stderr
    gate = tmp_path / "gate"
    proc = spawn(*command, "-c", config, env={"ONCEFLOW_PAUSE_AT": f"worker_after_start:{gate}"})
    deadline = time.monotonic() + 60
    while not Path(f"{gate}.reached").exists():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    return proc, gate


@pytest.mark.parametrize("command", [("up", "--until-idle"), ("worker",), ("up",)])
def test_ctrl_c_finishes_the_current_run_then_says_interrupted_and_what_is_left(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    import signal
    import time

    proc, gate = _paused_in_a_run(tmp_path, *command)
    proc.send_signal(signal.SIGINT)  # mid-run
    time.sleep(0.3)
    gate.touch()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "interrupted: 1 run(s) still queued" in err
    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    assert sorted(r.state for r in store.scheduled_runs.find()) == ["COMPLETED", "PENDING"]
    store.close()


def test_ctrl_c_stops_the_scheduler_loop_with_interrupted(tmp_path: Path) -> None:
    import signal
    import time

    from tests.helpers.cli import spawn

    config = str(_project(tmp_path))
    proc = spawn("scheduler", "-c", config, "--interval", "0.2")
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err


def test_missed_ticks_the_default_catch_up_leaves_out_are_said_and_counted(
    tmp_path: Path,
) -> None:
    from datetime import UTC, datetime, timedelta

    start = (datetime.now(UTC) - timedelta(days=6)).date().isoformat()
    config = str(_project(tmp_path, start=f"{start}T12:00:00+00:00"))
    check = run_cli("check", "-c", config)
    assert check.returncode == 0, check.stderr
    assert "is past and catch_up is latest" in check.stderr
    once = run_cli("scheduler", "--once", "-c", config)
    # a policy's choice, not a failure: exit 0, and a line naming how to run them
    assert once.returncode == 0, once.stderr
    (line,) = [x for x in once.stdout.splitlines() if "missed tick(s)" in x]
    assert re.match(
        r"  warning: sched/nightly: [45] missed tick\(s\) not run by catch_up latest", line
    )
    assert "to run them: onceflow backfill --schedule nightly --from " in line
    again = run_cli("scheduler", "--once", "--json", "-c", config)
    assert json.loads(again.stdout)["skipped_ticks"] == 0  # said once: the cursor moved on


@pytest.mark.parametrize("command", [("worker", "--until-idle"), ("up", "--until-idle")])
def test_sigterm_of_a_command_run_until_idle_says_interrupted_and_exits_143(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    import signal
    import time

    proc, gate = _paused_in_a_run(tmp_path, *command)
    proc.send_signal(signal.SIGTERM)  # what `timeout` and a cancelled CI job send
    time.sleep(0.3)
    gate.touch()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "Traceback" not in err
    assert "interrupted: 1 run(s) still queued" in err


def test_runs_list_of_a_mistyped_tenant_or_schedule_is_refused_naming_the_known_ones(
    tmp_path: Path,
) -> None:
    config = str(_project(tmp_path, tenant="acme"))
    tenant = run_cli("runs", "list", "--tenant", "nobody", "-c", config)
    assert tenant.returncode == 2 and tenant.stdout == ""
    assert "--tenant 'nobody'" in tenant.stderr and "known tenants: acme" in tenant.stderr
    schedule = run_cli("runs", "list", "--schedule", "nosuch", "-c", config)
    assert schedule.returncode == 2 and schedule.stdout == ""
    assert "--schedule 'nosuch'" in schedule.stderr and "schedules: nightly" in schedule.stderr
    # known names with nothing to list yet are no typo
    for args in (("--tenant", "acme"), ("--schedule", "nightly"), ("--schedule", "backfill")):
        fresh = run_cli("runs", "list", *args, "-c", config)
        assert fresh.returncode == 0, fresh.stderr
        assert fresh.stdout.strip() == "no scheduled runs match"


def test_a_worker_cut_off_from_its_store_still_prints_its_json_report_with_the_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from onceflow.cli import main
    from onceflow.errors import StateError
    from onceflow.schedule import Worker

    config = str(_project(tmp_path))

    def away(*_: object) -> bool:
        raise StateError("state: cannot connect to PostgreSQL store: connection refused")

    monkeypatch.setattr(Worker, "_idle", away)
    code = main(["worker", "--until-idle", "--json", "-c", config])
    out, err = capsys.readouterr()
    assert code == 1
    report = json.loads(out)  # a script reading stdout still gets a report
    assert report["error"] == "state: cannot connect to PostgreSQL store: connection refused"
    assert report["completed"] == 0 and report["failed"] == 0
    assert "error: state: cannot connect" in err
