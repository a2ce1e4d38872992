"""Forgetting: calls, transcripts and texts are deleted after the retention period.

Opt-outs are kept: a number that texted STOP must stay opted out.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, Delete, delete, select
from sqlalchemy.orm import Session

from voice_app.store import CallRow, JobRow, OutboxRow, ReplayRow, Store, TurnRow

# Stored webhook answers only serve retries, which come within minutes.
REPLAY_KEEP_SECONDS = 86_400.0


def _deleted(session: Session, statement: Delete) -> int:
    result = cast(CursorResult[Any], session.execute(statement))
    return int(result.rowcount)


@dataclass(frozen=True)
class PurgeReport:
    """How many rows of each kind were deleted."""

    calls: int
    turns: int
    texts: int
    jobs: int
    replies: int


def purge(store: Store, retention_days: float, now: float | None = None) -> PurgeReport:
    """Delete every call older than the retention period with all that belongs to it."""
    now = time.time() if now is None else now
    cutoff = now - retention_days * 86_400.0
    with store.transaction() as session:
        old = select(CallRow.call_sid).where(CallRow.created_at < cutoff)
        turns = _deleted(session, delete(TurnRow).where(TurnRow.call_sid.in_(old)))
        texts = _deleted(session, delete(OutboxRow).where(OutboxRow.call_sid.in_(old)))
        stale_replies = ReplayRow.created_at < now - REPLAY_KEEP_SECONDS
        replies = _deleted(
            session, delete(ReplayRow).where(ReplayRow.call_sid.in_(old) | stale_replies)
        )
        finished_long_ago = JobRow.state.in_(["done", "failed"]) & (JobRow.created_at < cutoff)
        jobs = _deleted(session, delete(JobRow).where(JobRow.call_sid.in_(old) | finished_long_ago))
        calls = _deleted(session, delete(CallRow).where(CallRow.created_at < cutoff))
    return PurgeReport(calls=calls, turns=turns, texts=texts, jobs=jobs, replies=replies)
