"""Texts people send to the line's number: STOP and START keywords, HELP, anything else."""

from __future__ import annotations

import logging

from sqlalchemy import select

from voice_app.redact import mask_number
from voice_app.sms import UNSUBSCRIBED
from voice_app.store import OptOutRow, OutboxRow, Store

log = logging.getLogger(__name__)

# The opt-out and opt-in keywords carriers and Twilio recognise.
STOP_WORDS = frozenset(
    {"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "optout", "revoke"}
)
START_WORDS = frozenset({"start", "unstop", "yes", "optin"})
HELP_WORDS = frozenset({"help", "info"})

# How far along a text is, by the statuses Twilio reports; a report never moves it back.
_STAGE = {
    "accepted": 1,
    "scheduled": 1,
    "queued": 1,
    "sending": 2,
    "sent": 3,
    "delivered": 4,
    "undelivered": 4,
    "failed": 4,
    "read": 5,
}

HELP_REPLY = (
    "Interview practice line: call this number to practise answering an interview question "
    "and get feedback by text. Reply STOP to stop texts, START to allow them again."
)


class IncomingTexts:
    """Records opt-outs and opt-ins and says what the line is."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def handle(self, from_number: str, body: str) -> str | None:
        """Act on one incoming text; the reply to send, or None for no reply."""
        keyword = body.strip().split(maxsplit=1)[0].lower().strip(".!") if body.strip() else ""
        if keyword in STOP_WORDS:
            with self.store.transaction(durable=True) as session:  # a power cut must not undo it
                if session.get(OptOutRow, from_number) is None:
                    session.add(OptOutRow(number=from_number))
            log.info("%s opted out of texts", mask_number(from_number))
            return None  # Twilio confirms STOP itself; a reply after STOP would be refused.
        if keyword in START_WORDS:
            with self.store.transaction() as session:
                row = session.get(OptOutRow, from_number)
                if row is not None:
                    session.delete(row)
            log.info("%s opted back in to texts", mask_number(from_number))
            return None  # Twilio confirms START itself.
        return HELP_REPLY

    def delivery_report(
        self, message_sid: str, status: str, error_code: int | None, to_number: str = ""
    ) -> None:
        """Record what Twilio says became of a text we sent (delivered, undelivered, failed).

        Reports may arrive out of order, so one never replaces a later stage; and one may
        arrive before the app has stored the message's SID (its sending attempt died after
        Twilio accepted it), so it is matched to the text still being sent to that number.
        """
        with self.store.transaction() as session:
            message = session.scalars(
                select(OutboxRow).where(OutboxRow.message_sid == message_sid)
            ).first()
            if message is None and to_number:
                message = session.scalars(
                    select(OutboxRow).where(
                        OutboxRow.to_number == to_number,
                        OutboxRow.state == "sending",
                        OutboxRow.message_sid.is_(None),
                    )
                ).first()
                if message is not None:
                    message.state, message.message_sid = "sent", message_sid
            if message is None:
                log.info("delivery report for an unknown message %s", message_sid)
                return
            if _STAGE.get(status, 0) >= _STAGE.get(message.delivery_status or "", 0):
                message.delivery_status = status
                message.delivery_error_code = error_code
            if error_code == UNSUBSCRIBED and session.get(OptOutRow, message.to_number) is None:
                session.add(OptOutRow(number=message.to_number))
        if status in ("undelivered", "failed"):
            log.warning("text %s %s (error %s)", message_sid, status, error_code)
