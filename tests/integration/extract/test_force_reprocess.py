"""`force_reprocess_table` (seed 000) and `reset-state --table`: a run that has not run
has nothing to reprocess and is not invented; a run the store forgot, whose files the lake
still commits, is recorded pending with the table flagged. A forced extraction flags its
tables too, until each new file is committed."""

from __future__ import annotations

import sqlite3

from tests.helpers.extract import read, shop_pipeline

DAY = "2025-01-23"


def test_force_reprocess_of_a_date_that_has_not_run_records_nothing_and_its_first_run_is_clean(
    tmp_path,
):
    pipeline = shop_pipeline(tmp_path)
    assert pipeline.force_reprocess_table("shop.orders", DAY) is False
    assert pipeline.store.runs.find() == []  # no phantom failed run
    reset = pipeline.reset_state(DAY, table="shop.orders")
    assert (reset["count"], reset["ran"]) == (0, False)
    assert pipeline.store.runs.find() == []

    first = pipeline.extract(DAY)
    assert first.ok and (first.run.status, first.run.restart_count) == ("completed", 0)
    assert {r.action for r in first.results} == {"extracted"}


def test_force_reprocess_of_a_run_the_store_forgot_reextracts_its_committed_file(tmp_path):
    pipeline = shop_pipeline(tmp_path)
    assert pipeline.extract(DAY).ok
    pipeline.reset_state(DAY)  # the store forgets the run; its files stay committed
    assert pipeline.force_reprocess_table("shop.orders", DAY) is True
    (pending,) = pipeline.store.runs.find()
    assert (pending.status, pending.restart_count) == ("pending", 0)

    again = pipeline.extract(DAY)
    actions = {r.table_key: r.action for r in again.results}
    assert actions == {"shop.orders": "extracted", "shop.customers": "skipped"}
    assert (again.run.status, again.run.restart_count) == ("completed", 0)


def test_a_table_whose_forced_reextraction_failed_is_reextracted_by_a_plain_run(tmp_path):
    pipeline = shop_pipeline(tmp_path)
    assert pipeline.extract(DAY).ok
    with sqlite3.connect(tmp_path / "shop.db") as conn:
        conn.execute("UPDATE customers SET name = 'b'")
        conn.execute("ALTER TABLE customers RENAME TO customers_moved")
    conn.close()

    forced = pipeline.extract(DAY, force_reprocess=True)
    actions = {r.table_key: r.action for r in forced.results}
    assert actions == {"shop.orders": "extracted", "shop.customers": "failed"}
    flags = {
        k: e.force_reprocess
        for k, e in pipeline.store.extractions.of_run(forced.run.run_id).items()
    }
    assert flags == {"shop.orders": False, "shop.customers": True}

    with sqlite3.connect(tmp_path / "shop.db") as conn:
        conn.execute("ALTER TABLE customers_moved RENAME TO customers")
    conn.close()
    # the old customers file still stands committed; the flag, not its absence, redoes it
    again = pipeline.extract(DAY)
    actions = {r.table_key: r.action for r in again.results}
    assert actions == {"shop.orders": "skipped", "shop.customers": "extracted"}
    assert read(again, "shop.customers").column("name").to_pylist() == ["b"]
    assert again.run.status == "completed"
