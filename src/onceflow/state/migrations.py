"""Versioned state schema. Append a migration; never edit a released one.

The DDL is written once for both backends: SQLite accepts the PostgreSQL type names, and
`Database.adapt_ddl` rewrites the clauses it does not (identity columns, `COLLATE "C"`).
A statement only one backend needs is an `OnlyOn`; the other skips it.

Text compares byte-wise on both backends (the store keeps times as ISO text and orders
and compares them in SQL): SQLite's BINARY collation does, and on PostgreSQL every text
column is `COLLATE "C"` (migration 13), whatever the database's default collation. A new
text column is written `TEXT COLLATE "C"` (SQLite reads it as plain TEXT, BINARY);
tests/integration/state/test_collation.py fails on one that is not.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OnlyOn:
    """A migration statement run on one backend only (`postgresql`, `sqlite`): the other
    behaves so already, or has no such statement (SQLite cannot alter a column)."""

    backend: str
    sql: str


MIGRATIONS: list[tuple[int, str, list[str | OnlyOn]]] = [
    (
        1,
        "pipeline runs and extractions",
        [
            """CREATE TABLE pipeline_runs (
                run_id TEXT PRIMARY KEY,
                pipeline TEXT NOT NULL,
                run_date TEXT NOT NULL,
                window_start TEXT NOT NULL,
                window_end TEXT NOT NULL,
                status TEXT NOT NULL,
                started_at TEXT,
                ended_at TEXT,
                total_tables INTEGER NOT NULL DEFAULT 0,
                completed_tables INTEGER NOT NULL DEFAULT 0,
                failed_tables INTEGER NOT NULL DEFAULT 0,
                restart_count INTEGER NOT NULL DEFAULT 0,
                updated_at TEXT NOT NULL
            )""",
            """CREATE TABLE extractions (
                run_id TEXT NOT NULL,
                table_key TEXT NOT NULL,
                source TEXT NOT NULL,
                table_name TEXT NOT NULL,
                mode TEXT NOT NULL,
                window_start TEXT,
                window_end TEXT,
                status TEXT NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0,
                record_count BIGINT,
                file_path TEXT,
                file_size BIGINT,
                checksum TEXT,
                error TEXT,
                started_at TEXT,
                ended_at TEXT,
                duration_seconds DOUBLE PRECISION,
                force_reprocess INTEGER NOT NULL DEFAULT 0,
                updated_at TEXT NOT NULL,
                PRIMARY KEY (run_id, table_key)
            )""",
            "CREATE INDEX extractions_by_status ON extractions (status)",
        ],
    ),
    (
        2,
        "last action of an extraction, pipeline locks and the file tracker",
        [
            "ALTER TABLE extractions ADD COLUMN last_action TEXT",
            """CREATE TABLE locks (
                name TEXT PRIMARY KEY,
                token TEXT NOT NULL,
                pid INTEGER NOT NULL,
                host TEXT NOT NULL,
                boot_id TEXT,
                process_start DOUBLE PRECISION,
                acquired_at TEXT NOT NULL,
                heartbeat_at TEXT NOT NULL,
                expires_at TEXT NOT NULL
            )""",
            """CREATE TABLE files (
                file_path TEXT NOT NULL,
                target_table TEXT NOT NULL,
                file_size BIGINT,
                modified_time TEXT,
                checksum TEXT,
                sequence BIGINT,
                status TEXT NOT NULL,
                batch_id TEXT,
                delta_version BIGINT,
                owner_token TEXT,
                started_at TEXT,
                ended_at TEXT,
                error TEXT,
                retry_count INTEGER NOT NULL DEFAULT 0,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL,
                PRIMARY KEY (target_table, file_path)
            )""",
            "CREATE INDEX files_by_status ON files (status)",
        ],
    ),
    (
        3,
        "file tracker keyed by table location and file identity",
        [
            # The old tracker (keyed by target name and absolute path) is an index of the
            # Delta logs: it is dropped and re-derived from them on the next load.
            "DROP TABLE files",
            """CREATE TABLE load_files (
                target_uri TEXT NOT NULL,
                file_id TEXT NOT NULL,
                pipeline TEXT NOT NULL,
                table_key TEXT NOT NULL,
                file_path TEXT,
                window_start TEXT,
                file_size BIGINT,
                modified_time TEXT,
                checksum TEXT,
                loaded_checksum TEXT,
                status TEXT NOT NULL,
                batch_id TEXT,
                delta_version BIGINT,
                owner_token TEXT,
                started_at TEXT,
                ended_at TEXT,
                error TEXT,
                retry_count INTEGER NOT NULL DEFAULT 0,
                rows_loaded BIGINT,
                rows_skipped BIGINT,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL,
                PRIMARY KEY (target_uri, file_id)
            )""",
            "CREATE INDEX load_files_by_status ON load_files (status)",
            "CREATE INDEX load_files_by_pipeline ON load_files (pipeline)",
        ],
    ),
    (
        4,
        "validation: rule results (the cache), validations and rule history",
        [
            # One result per (rule definition, data fingerprint): the cache and the resume
            # point. `metrics` holds the partial aggregate state an incremental run merges;
            # source_id/source_version (a Delta table id and version) find an older state.
            """CREATE TABLE rule_results (
                pipeline TEXT NOT NULL,
                table_key TEXT NOT NULL,
                rule_name TEXT NOT NULL,
                rule_hash TEXT NOT NULL,
                fingerprint TEXT NOT NULL,
                outcome TEXT NOT NULL,
                result TEXT NOT NULL,
                metrics TEXT,
                source_id TEXT,
                source_version BIGINT,
                created_at TEXT NOT NULL,
                PRIMARY KEY (pipeline, table_key, rule_name, rule_hash, fingerprint)
            )""",
            "CREATE INDEX rule_results_by_source ON rule_results "
            "(pipeline, table_key, source_id, source_version)",
            """CREATE TABLE validations (
                validation_id TEXT PRIMARY KEY,
                pipeline TEXT NOT NULL,
                table_key TEXT NOT NULL,
                run_id TEXT,
                stage TEXT NOT NULL,
                fingerprint TEXT,
                status TEXT NOT NULL,
                counts TEXT,
                statements INTEGER NOT NULL DEFAULT 0,
                started_at TEXT NOT NULL,
                ended_at TEXT
            )""",
            "CREATE INDEX validations_by_table ON validations (pipeline, table_key, started_at)",
            """CREATE TABLE rule_history (
                validation_id TEXT NOT NULL,
                rule_name TEXT NOT NULL,
                pipeline TEXT NOT NULL,
                table_key TEXT NOT NULL,
                outcome TEXT NOT NULL,
                pass_rate DOUBLE PRECISION,
                failing_rows BIGINT,
                cached INTEGER NOT NULL DEFAULT 0,
                recorded_at TEXT NOT NULL,
                PRIMARY KEY (validation_id, rule_name)
            )""",
            "CREATE INDEX rule_history_by_table ON rule_history (pipeline, table_key, recorded_at)",
        ],
    ),
]

MIGRATIONS.append(
    (
        5,
        "scheduled runs with their transition history, schedule cursors and the job queue",
        [
            """CREATE TABLE scheduled_runs (
                id TEXT PRIMARY KEY,
                pipeline TEXT NOT NULL,
                schedule TEXT NOT NULL,
                tick TEXT NOT NULL,
                kind TEXT NOT NULL,
                batch TEXT NOT NULL,
                tenant TEXT NOT NULL,
                priority INTEGER NOT NULL,
                run_date TEXT NOT NULL,
                window_start TEXT NOT NULL,
                window_end TEXT NOT NULL,
                tables TEXT,
                state TEXT NOT NULL,
                attempt INTEGER NOT NULL DEFAULT 0,
                retry_policy TEXT,
                max_runtime_seconds DOUBLE PRECISION,
                force_reprocess INTEGER NOT NULL DEFAULT 0,
                next_attempt_at TEXT,
                worker TEXT,
                job_id BIGINT,
                error TEXT,
                error_type TEXT,
                waiting_on TEXT,
                created_at TEXT NOT NULL,
                started_at TEXT,
                ended_at TEXT,
                updated_at TEXT NOT NULL,
                UNIQUE (pipeline, schedule, tick)
            )""",
            "CREATE INDEX scheduled_runs_by_state ON scheduled_runs (state, tick)",
            "CREATE INDEX scheduled_runs_by_tenant ON scheduled_runs (tenant, state)",
            "CREATE INDEX scheduled_runs_by_date ON scheduled_runs (pipeline, run_date)",
            """CREATE TABLE scheduled_run_history (
                id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
                run_id TEXT NOT NULL,
                from_state TEXT,
                to_state TEXT NOT NULL,
                at TEXT NOT NULL,
                worker TEXT,
                error TEXT,
                reason TEXT
            )""",
            "CREATE INDEX scheduled_run_history_by_run ON scheduled_run_history (run_id, id)",
            """CREATE TABLE schedule_cursors (
                pipeline TEXT NOT NULL,
                schedule TEXT NOT NULL,
                last_tick TEXT NOT NULL,
                updated_at TEXT NOT NULL,
                PRIMARY KEY (pipeline, schedule)
            )""",
            # Times are seconds since the epoch here: the claim compares them on every call
            # and the status averages waits, both portable as arithmetic on numbers.
            """CREATE TABLE jobs (
                id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
                pipeline TEXT NOT NULL,
                tenant TEXT NOT NULL,
                priority INTEGER NOT NULL,
                run_id TEXT,
                payload TEXT,
                state TEXT NOT NULL,
                enqueued_at DOUBLE PRECISION NOT NULL,
                run_after DOUBLE PRECISION NOT NULL,
                claimed_at DOUBLE PRECISION,
                worker TEXT,
                token TEXT,
                heartbeat_at DOUBLE PRECISION,
                lease_expires_at DOUBLE PRECISION,
                attempts INTEGER NOT NULL DEFAULT 0,
                error TEXT,
                finished_at DOUBLE PRECISION
            )""",
            # the claim's index: queued jobs in priority, then FIFO, order
            "CREATE INDEX jobs_queued ON jobs (priority, id) WHERE state = 'queued'",
            "CREATE INDEX jobs_claimed ON jobs (lease_expires_at) WHERE state = 'claimed'",
            # one live job per scheduled run, whoever enqueues it
            "CREATE UNIQUE INDEX jobs_live_run ON jobs (run_id) "
            "WHERE state IN ('queued', 'claimed') AND run_id IS NOT NULL",
        ],
    )
)

MIGRATIONS.append(
    (
        6,
        "scheduled runs: duration and the caller's pipeline logging id",
        [
            # The seed's mark_as_completed(run_id, duration) and mark_as_running(run_id,
            # pipeline_logging_id) record these; NULL on runs that ended before version 6.
            "ALTER TABLE scheduled_runs ADD COLUMN duration_seconds DOUBLE PRECISION",
            "ALTER TABLE scheduled_runs ADD COLUMN pipeline_logging_id TEXT",
        ],
    )
)

MIGRATIONS.append(
    (
        7,
        "scheduled runs: every type name of a failure",
        [
            # A failed table's error is an ExtractError or LoadError with a cause of its own
            # (a transient SourceError, an OSError): the retry policy matches any of the
            # names, and `RetryManager.should_retry` judges a recorded run by them later.
            # A JSON list; NULL on runs that failed before version 7 (`error_type` then).
            "ALTER TABLE scheduled_runs ADD COLUMN error_types TEXT",
        ],
    )
)

MIGRATIONS.append(
    (
        8,
        "jobs: an idempotency key per enqueue",
        [
            # QueueManager.enqueue(..., idempotency_key=K) (the seed's row_ids): a second
            # enqueue with K, a client's retry after a timeout, finds the job K made and
            # queues nothing. Unique per tenant for as long as the job row is kept, in
            # any state (see docs/schedule.md, "Idempotent enqueues"); jobs without a key
            # (every scheduled run's) are not in the index.
            "ALTER TABLE jobs ADD COLUMN idempotency_key TEXT",
            "CREATE UNIQUE INDEX jobs_idempotency_key ON jobs (tenant, idempotency_key) "
            "WHERE idempotency_key IS NOT NULL",
        ],
    )
)

MIGRATIONS.append(
    (
        9,
        "the seed validator's JSON state files seen",
        [
            # Its entries carry no data fingerprint, so they are never taken as results:
            # the validate step reports a file once per content (digest), keeping here
            # that it did (onceflow.validate.seed_state).
            """CREATE TABLE seed_state_files (
                pipeline TEXT NOT NULL,
                path TEXT NOT NULL,
                digest TEXT NOT NULL,
                summary TEXT NOT NULL,
                seen_at TEXT NOT NULL,
                PRIMARY KEY (pipeline, path, digest)
            )""",
        ],
    )
)

MIGRATIONS.append(
    (
        10,
        "schedule pauses; indexes for purging finished runs and jobs",
        [
            # `onceflow schedule pause`: the flag sits on the schedule's cursor row, so that
            # the scheduler's conditional cursor move (`... AND paused_at IS NULL`) and a
            # pause are ordered by the row itself: a pass never records ticks after a
            # pause committed (see ScheduledRuns.advance_cursor).
            "ALTER TABLE schedule_cursors ADD COLUMN paused_at TEXT",
            "ALTER TABLE schedule_cursors ADD COLUMN pause_reason TEXT",
            # `onceflow runs purge`: a failed window is kept while a later window of its
            # batch is kept (the blocking rule reads it), looked up by batch; a purged
            # run's jobs are found by run (the live-job index covers live ones only); and
            # finished jobs without a run are found by when they finished
            "CREATE INDEX scheduled_runs_by_batch ON scheduled_runs "
            "(pipeline, schedule, batch, run_date)",
            "CREATE INDEX jobs_by_run ON jobs (run_id)",
            "CREATE INDEX jobs_finished ON jobs (finished_at) "
            "WHERE state IN ('completed', 'failed', 'cancelled')",
        ],
    )
)

MIGRATIONS.append(
    (
        11,
        "rows an incremental extraction left out: their cursor is in no window",
        [
            # `extract.null_cursor: skip`: the rows whose cursor is NULL (a zero date,
            # +-infinity) are in no window; how many there were, for `status` and reports
            "ALTER TABLE extractions ADD COLUMN null_cursor_rows BIGINT",
        ],
    )
)

MIGRATIONS.append(
    (
        12,
        "quarantine passes completed",
        [
            # A validation answered wholly from the cache still owes its quarantine pass
            # (quarantine turned on since, a pass that failed or was killed): this row says
            # the pass completed on this data, with these rules, leaving the quarantine
            # table at this version, so that a rerun on the same three runs no query
            # (onceflow.validate.runner.TableRun._quarantine_done).
            """CREATE TABLE quarantine_passes (
                pipeline TEXT NOT NULL,
                table_key TEXT NOT NULL,
                fingerprint TEXT NOT NULL,
                rules TEXT NOT NULL,
                quarantine TEXT NOT NULL,
                done_at TEXT NOT NULL,
                PRIMARY KEY (pipeline, table_key, fingerprint)
            )""",
        ],
    )
)

#: Every text column of the store's tables at version 12, by table.
_TEXT_COLUMNS_12 = {
    "pipeline_runs": "run_id pipeline run_date window_start window_end status started_at "
    "ended_at updated_at",
    "extractions": "run_id table_key source table_name mode window_start window_end status "
    "file_path checksum error started_at ended_at updated_at last_action",
    "locks": "name token host boot_id acquired_at heartbeat_at expires_at",
    "load_files": "target_uri file_id pipeline table_key file_path window_start modified_time "
    "checksum loaded_checksum status batch_id owner_token started_at ended_at error "
    "created_at updated_at",
    "rule_results": "pipeline table_key rule_name rule_hash fingerprint outcome result metrics "
    "source_id created_at",
    "validations": "validation_id pipeline table_key run_id stage fingerprint status counts "
    "started_at ended_at",
    "rule_history": "validation_id rule_name pipeline table_key outcome recorded_at",
    "scheduled_runs": "id pipeline schedule tick kind batch tenant run_date window_start "
    "window_end tables state retry_policy next_attempt_at worker error error_type waiting_on "
    "created_at started_at ended_at updated_at pipeline_logging_id error_types",
    "scheduled_run_history": "run_id from_state to_state at worker error reason",
    "schedule_cursors": "pipeline schedule last_tick updated_at paused_at pause_reason",
    "jobs": "pipeline tenant run_id payload state worker token error idempotency_key",
    "seed_state_files": "pipeline path digest summary seen_at",
    "quarantine_passes": "pipeline table_key fingerprint rules quarantine done_at",
}

MIGRATIONS.append(
    (
        13,
        'PostgreSQL: text compares byte-wise (COLLATE "C"), as on SQLite',
        [
            # Times are ISO text, compared and ordered in SQL (`due`: tick <= now, the
            # latest tick, purge cutoffs). Under the database's default collation a
            # linguistic one (en_US.UTF-8 from initdb, an ICU locale) orders them by its
            # own rules, not by time: ICU puts '.' before '+', so 06:30:00.25+00:00 came
            # before 06:30:00+00:00, and a due run was missed or one not yet due queued.
            # In "C" text compares as bytes, as SQLite's BINARY does, and fixed-width UTC
            # ISO text orders as its instants. Every text column, names and keys too: one
            # rule for the whole store. One ALTER per table: PostgreSQL rewrites no row
            # (text stays text) but rebuilds each index on those columns once; the table
            # is locked (ACCESS EXCLUSIVE) until the upgrade commits. 16 s here for a
            # million runs, a million tracked files and three million transitions.
            OnlyOn(
                "postgresql",
                f"ALTER TABLE {table} "
                + ", ".join(f'ALTER COLUMN {c} TYPE TEXT COLLATE "C"' for c in columns.split()),
            )
            for table, columns in _TEXT_COLUMNS_12.items()
        ],
    )
)

MIGRATIONS.append(
    (
        14,
        "the SQL of rule results, each statement once per table and data",
        [
            # A fused query serves hundreds of rules: stored in each one's result, 2,002
            # rules on one table held 145 MB a validation (each rule its whole ~66 KB
            # chunk). A result now names its statements by digest; the text is here,
            # once per (table, data fingerprint), and goes with the results on that data.
            """CREATE TABLE rule_statements (
                pipeline TEXT COLLATE "C" NOT NULL,
                table_key TEXT COLLATE "C" NOT NULL,
                fingerprint TEXT COLLATE "C" NOT NULL,
                digest TEXT COLLATE "C" NOT NULL,
                sql TEXT COLLATE "C" NOT NULL,
                created_at TEXT COLLATE "C" NOT NULL,
                PRIMARY KEY (pipeline, table_key, fingerprint, digest)
            )""",
        ],
    )
)

LATEST_VERSION = MIGRATIONS[-1][0]
