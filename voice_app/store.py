"""The session store: calls, turns, background jobs, the outbox and opt-outs, in one database.

SQLAlchemy 2 over a SQLite file by default; a PostgreSQL URL works as well. Everything a call
needs between two webhooks lives here, so a server restart loses nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    inspect,
    text,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.schema import CreateColumn

from voice_app.errors import ConfigError

# Execution options: a connection whose transactions only read; one whose commits must reach
# the disk before they return.
_READONLY = "voice_app_readonly"
_DURABLE = "voice_app_durable"


class Base(DeclarativeBase):
    """Declarative base of the store's tables."""


class CallRow(Base):
    """One phone call, keyed by Twilio's CallSid."""

    __tablename__ = "calls"

    call_sid: Mapped[str] = mapped_column(String(64), primary_key=True)
    from_number: Mapped[str] = mapped_column(String(32), default="")
    bank: Mapped[str] = mapped_column(String(64))
    stage: Mapped[str] = mapped_column(String(16))
    consent: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    consent_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    consent_pending: Mapped[bool] = mapped_column(Boolean, default=False)
    consent_heard: Mapped[str | None] = mapped_column(String(16), nullable=True)
    probed: Mapped[list[str]] = mapped_column(JSON, default=list)
    ended_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    end_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    feedback: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # The rubric analysis of the current question's answers, worked out by the transcription job
    # so that the webhook picking the follow-up only reads it (`line.encode_analysis`).
    analysis: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True, default=None)
    created_at: Mapped[float] = mapped_column(Float, default=time.time)
    updated_at: Mapped[float] = mapped_column(Float, default=time.time, onupdate=time.time)


class TurnRow(Base):
    """One question or follow-up put to the caller, and what they answered."""

    __tablename__ = "turns"
    __table_args__ = (UniqueConstraint("call_sid", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_sid: Mapped[str] = mapped_column(ForeignKey("calls.call_sid"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    question_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    prompt: Mapped[str] = mapped_column(Text)
    dimension: Mapped[str | None] = mapped_column(String(32), nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    reprompted: Mapped[bool] = mapped_column(Boolean, default=False)
    asked: Mapped[int] = mapped_column(Integer, default=1)
    recording_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    recording_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    transcript: Mapped[str | None] = mapped_column(Text, nullable=True)
    words: Mapped[list[list[Any]] | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class JobRow(Base):
    """A piece of background work; recorded so that a restart resumes it."""

    __tablename__ = "jobs"
    __table_args__ = (UniqueConstraint("kind", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(200))
    call_sid: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    run_after: Mapped[float] = mapped_column(Float, default=time.time)
    lease_until: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[float] = mapped_column(Float, default=time.time)


class OutboxRow(Base):
    """The feedback text of one call; at most one per call."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_sid: Mapped[str] = mapped_column(String(64), unique=True)
    to_number: Mapped[str] = mapped_column(String(32))
    body: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    message_sid: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[float] = mapped_column(Float, default=time.time)
    sent_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    # What Twilio's status callbacks report after sending: delivered, undelivered, failed...
    delivery_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    delivery_error_code: Mapped[int | None] = mapped_column(Integer, nullable=True)


class ReplayRow(Base):
    """What a webhook answered, kept briefly so a retried request gets the same answer."""

    __tablename__ = "webhook_replies"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    call_sid: Mapped[str] = mapped_column(String(64), index=True)
    steps: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    created_at: Mapped[float] = mapped_column(Float, default=time.time, index=True)


class OptOutRow(Base):
    """A number that texted STOP: it gets no more texts until it texts START."""

    __tablename__ = "opt_outs"

    number: Mapped[str] = mapped_column(String(32), primary_key=True)
    opted_out_at: Mapped[float] = mapped_column(Float, default=time.time)


def missing_columns(engine: Engine) -> list[str]:
    """ALTER TABLE statements adding the columns the existing tables lack (no migration tool)."""
    inspector = inspect(engine)
    statements = []
    for table in Base.metadata.sorted_tables:
        present = {column["name"] for column in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in present:
                spec = CreateColumn(column).compile(dialect=engine.dialect)
                statements.append(f"ALTER TABLE {table.name} ADD COLUMN {spec}")
    return statements


def _database_file(engine: Engine) -> Path | None:
    database = engine.url.database
    return Path(database).resolve() if database and database != ":memory:" else None


def _make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when a transaction starts (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        # In WAL mode NORMAL syncs at checkpoints, not at every commit: a crash of the app loses
        # nothing, a power cut can lose the last commits (never consistency). FULL would hold
        # the single write lock through an fsync per transaction (about 4 ms on this project's
        # build machine), which made writers queue under load. Transactions that must survive a
        # power cut ask for it (`Store.transaction(durable=True)`).
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # A writer takes the write lock up front: a read-then-write transaction that upgrades
        # later can fail with "database is locked" instead of waiting when two workers race.
        # A reader needs no lock at all (WAL lets it read beside the writer).
        options = connection.get_execution_options()
        if options.get(_READONLY, False):
            connection.exec_driver_sql("BEGIN")
            return
        synchronous = "FULL" if options.get(_DURABLE, False) else "NORMAL"
        if connection.info.get("synchronous", "NORMAL") != synchronous:
            connection.exec_driver_sql(f"PRAGMA synchronous={synchronous}")
            connection.info["synchronous"] = synchronous
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


class WriterQueue:
    """SQLite's one writer at a time, as a queue: writers answering a caller go first.

    SQLite's own busy handler retries on a timer (sleeps of up to 100 ms) instead of queueing,
    so under load a waiting writer can lose for seconds to newcomers, and a webhook waits behind
    background jobs. Here the threads of a process queue in order, webhooks before background
    work, and the processes sharing the database file queue on a lock file beside it, which
    the kernel hands over as soon as it is free.
    """

    def __init__(self, database: Path | None) -> None:
        self._mutex = threading.Lock()
        self._busy = False
        self._waiting: tuple[deque[threading.Lock], deque[threading.Lock]] = (deque(), deque())
        self._background = threading.local()
        self._lock_paths = (
            (
                database.with_name(database.name + "-writer"),
                database.with_name(database.name + "-urgent"),
            )
            if database is not None
            else None
        )
        self._files: tuple[int, int] | None = None
        self._files_pid = 0

    @contextmanager
    def background(self) -> Iterator[None]:
        """Mark this thread's transactions as background work: they yield to webhooks."""
        before = getattr(self._background, "on", False)
        self._background.on = True
        try:
            yield
        finally:
            self._background.on = before

    @contextmanager
    def turn(self) -> Iterator[None]:
        """Wait for this thread's turn to write, and hold it."""
        urgent = not getattr(self._background, "on", False)
        self._enter(urgent)
        try:
            with self._across_processes(urgent):
                yield
        finally:
            self._leave()

    @contextmanager
    def _across_processes(self, urgent: bool) -> Iterator[None]:
        files = self._lock_files()
        if files is None:
            yield
            return
        writer, webhooks = files
        if urgent:
            # Held shared while a webhook waits and writes: background writers of every process
            # wait until no webhook does.
            fcntl.flock(webhooks, fcntl.LOCK_SH)
        else:
            fcntl.flock(webhooks, fcntl.LOCK_EX)
            fcntl.flock(webhooks, fcntl.LOCK_UN)
        try:
            fcntl.flock(writer, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(writer, fcntl.LOCK_UN)
        finally:
            if urgent:
                fcntl.flock(webhooks, fcntl.LOCK_UN)

    def _enter(self, urgent: bool) -> None:
        with self._mutex:
            if not self._busy:
                self._busy = True
                return
            gate = threading.Lock()
            gate.acquire()
            self._waiting[0 if urgent else 1].append(gate)
        gate.acquire()  # the writer before us hands its turn over by releasing it

    def _leave(self) -> None:
        with self._mutex:
            for waiting in self._waiting:
                if waiting:
                    waiting.popleft().release()  # still busy: the turn passes straight on
                    return
            self._busy = False

    def _lock_files(self) -> tuple[int, int] | None:
        if self._lock_paths is None:
            return None
        # Opened once per process: a descriptor inherited over fork would share its lock with
        # the parent's, and exclude nobody.
        if self._files is None or self._files_pid != os.getpid():
            self._files = (
                os.open(self._lock_paths[0], os.O_RDWR | os.O_CREAT, 0o600),
                os.open(self._lock_paths[1], os.O_RDWR | os.O_CREAT, 0o600),
            )
            self._files_pid = os.getpid()
        return self._files


class Store:
    """Owns the database engine and hands out transactions."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = _make_engine(url)
        self._sqlite = self.engine.dialect.name == "sqlite"
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._durable = sessionmaker(
            self.engine.execution_options(**{_DURABLE: True}), expire_on_commit=False
        )
        self._readers = sessionmaker(
            self.engine.execution_options(**{_READONLY: True}), expire_on_commit=False
        )
        # SQLite has one writer at a time: writers queue for it (PostgreSQL locks rows itself).
        self.writers = WriterQueue(_database_file(self.engine)) if self._sqlite else None

    def create_schema(self) -> None:
        """Create the tables that do not exist yet; refuse a database missing newer columns."""
        Base.metadata.create_all(self.engine)
        missing = missing_columns(self.engine)
        if missing:
            raise ConfigError(
                f"The database at {self.engine.url.render_as_string(hide_password=True)} was "
                "created by an older version and lacks columns this version needs. Add them "
                "(see docs/deployment.md, 'Upgrading'), then start again:\n"
                + "\n".join(f"  {statement};" for statement in missing)
            )

    @contextmanager
    def transaction(self, *, durable: bool = False) -> Iterator[Session]:
        """A session whose work is committed on success and rolled back on error.

        `durable`: the commit is on disk when this returns, even through a power cut (for a
        mark that must survive before something irreversible happens, such as sending a text).
        """
        sessions = self._durable if durable else self._sessions
        turn = self.writers.turn() if self.writers is not None else contextlib.nullcontext()
        with turn, sessions.begin() as session:
            yield session

    def background(self) -> contextlib.AbstractContextManager[None]:
        """While in it, this thread's transactions are background work and wait for webhooks'."""
        return self.writers.background() if self.writers is not None else contextlib.nullcontext()

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A session for reads only: it takes no write lock and commits nothing."""
        with self._readers() as session:  # closing the session rolls its reads back
            yield session

    def ping(self) -> bool:
        """True when the database answers."""
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return True

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
