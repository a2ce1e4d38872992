"""The session store: a database created by an earlier version is named, not half used."""

from __future__ import annotations

import contextlib
import multiprocessing
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from voice_app.app import create_app, get_services
from voice_app.errors import ConfigError
from voice_app.store import Store, WriterQueue


def test_a_database_missing_a_newer_column_is_refused_with_the_statement_that_adds_it(
    app_config: dict[str, Any],
) -> None:
    old = Store(app_config["database_url"])
    old.create_schema()
    with old.engine.begin() as connection:
        connection.execute(text("ALTER TABLE calls DROP COLUMN analysis"))  # as before it existed
    old.dispose()

    with pytest.raises(ConfigError) as refused:
        create_app(app_config)

    statement = "ALTER TABLE calls ADD COLUMN analysis JSON"
    assert statement in str(refused.value)
    with old.engine.begin() as connection:
        connection.execute(text(statement))
    old.dispose()
    app = create_app(app_config)  # what the message says to run is enough
    get_services(app).store.dispose()


def test_only_transactions_that_must_survive_a_power_cut_wait_for_the_disk(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'sync.sqlite3'}")
    store.create_schema()
    full, normal = 2, 1  # SQLite's values of PRAGMA synchronous

    with store.transaction() as session:
        assert session.execute(text("PRAGMA synchronous")).scalar() == normal
    with store.transaction(durable=True) as session:
        assert session.execute(text("PRAGMA synchronous")).scalar() == full
    with store.transaction() as session:  # the same pooled connection, back to NORMAL
        assert session.execute(text("PRAGMA synchronous")).scalar() == normal
    store.dispose()


def test_a_webhook_waiting_to_write_goes_before_waiting_background_work(tmp_path: Path) -> None:
    writers = WriterQueue(tmp_path / "db.sqlite3")
    order: list[str] = []
    queued = threading.Semaphore(0)

    def write(name: str, background: bool) -> None:
        with writers.background() if background else contextlib.nullcontext():
            queued.release()
            with writers.turn():
                order.append(name)

    with writers.background(), writers.turn():  # a job is writing
        job = threading.Thread(target=write, args=("job", True))
        job.start()
        queued.acquire()
        time.sleep(0.1)  # the job is queued first
        webhook = threading.Thread(target=write, args=("webhook", False))
        webhook.start()
        queued.acquire()
        time.sleep(0.1)
    job.join(10)
    webhook.join(10)

    assert order == ["webhook", "job"]


def _hold_the_turn(database: str, held: Any, log: str) -> None:
    writers = WriterQueue(Path(database))
    with writers.turn():
        held.set()
        time.sleep(0.3)
        with open(log, "a") as out:
            out.write("other process done\n")


def test_writers_of_two_processes_take_turns(tmp_path: Path) -> None:
    database, log = tmp_path / "db.sqlite3", tmp_path / "order.log"
    context = multiprocessing.get_context("fork")
    held = context.Event()
    other = context.Process(target=_hold_the_turn, args=(str(database), held, str(log)))
    other.start()
    try:
        assert held.wait(30)
        with WriterQueue(database).turn(), open(log, "a") as out:
            out.write("this process writes\n")
    finally:
        other.join(30)

    assert log.read_text().splitlines() == ["other process done", "this process writes"]
