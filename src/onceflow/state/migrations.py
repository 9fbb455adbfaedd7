"""Versioned state schema. Append a migration; never edit a released one.

The DDL is written once for both backends: SQLite accepts the PostgreSQL type names.
"""

from __future__ import annotations

MIGRATIONS: list[tuple[int, str, list[str]]] = [
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

LATEST_VERSION = MIGRATIONS[-1][0]
