"""Texts to callers, through Twilio's Messages API (the only module that sends them)."""

from __future__ import annotations

import logging
from typing import Protocol

from voice_app.config import Settings
from voice_app.errors import SmsError
from voice_app.twilio_rest import twilio_client

log = logging.getLogger(__name__)

# Twilio error 21610: the recipient texted STOP. Retrying can never succeed.
UNSUBSCRIBED = 21610


class TextSender(Protocol):
    """Hands texts to the carrier and finds out whether one was already sent."""

    def send(self, to: str, body: str, *, status_callback: str | None = None) -> str:
        """Send `body` to the number `to`; its message SID, or `SmsError`."""
        ...

    def find_sent(self, to: str, body: str, since: float) -> str | None:
        """The SID of a text with this body sent to `to` since `since` (epoch s), if any."""
        ...


class TwilioTextSender:
    """Sends texts with the twilio REST client, from the configured number."""

    def __init__(self, settings: Settings) -> None:
        self._client = twilio_client(settings)
        self._from = settings.twilio_phone_number

    def send(self, to: str, body: str, *, status_callback: str | None = None) -> str:
        """Send one text; 4xx answers (but 429) are permanent, the rest may be retried."""
        from twilio.base.exceptions import TwilioRestException, TwilioServiceException

        extra = {"status_callback": status_callback} if status_callback else {}
        try:
            message = self._client.messages.create(to=to, from_=self._from, body=body, **extra)
        except TwilioRestException as exc:
            raise _refused(exc.status, exc.code, exc.msg) from exc
        except TwilioServiceException as exc:  # the same refusal in RFC 9457 form
            raise _refused(exc.status, exc.code, exc.title) from exc
        except OSError as exc:
            raise SmsError(f"could not reach Twilio: {exc}", permanent=False) from exc
        return str(message.sid)

    def find_sent(self, to: str, body: str, since: float) -> str | None:
        """Look through recent texts to `to` for this body: did an earlier attempt get through?"""
        from twilio.base.exceptions import TwilioRestException, TwilioServiceException

        # Not filtered by DateSent: a text still queued at Twilio has no sent date yet. The list
        # is newest first; a minute of slack covers clock differences between us and Twilio.
        try:
            # One page is enough: the text would be among the newest to this number.
            messages = self._client.messages.page(to=to, from_=self._from, page_size=50)
        except TwilioRestException as exc:
            raise _refused(exc.status, exc.code, exc.msg) from exc
        except TwilioServiceException as exc:
            raise _refused(exc.status, exc.code, exc.title) from exc
        except OSError as exc:
            raise SmsError(f"could not reach Twilio: {exc}", permanent=False) from exc
        for message in messages:
            created = message.date_created
            recent = created is None or created.timestamp() >= since - 60
            if message.body == body and recent:
                return str(message.sid)
        return None


def _refused(status: int, code: int | None, message: str) -> SmsError:
    # 4xx answers will not change on a retry, except 429 (too many requests).
    permanent = (400 <= status < 500 and status != 429) or code == UNSUBSCRIBED
    return SmsError(
        f"Twilio refused the text ({status}, code {code}): {message}",
        permanent=permanent,
        code=code,
    )


class UnconfiguredTextSender:
    """Stands in when texting is not configured, so a call still ends cleanly."""

    def send(self, to: str, body: str, *, status_callback: str | None = None) -> str:
        """Refuse, saying which settings are missing."""
        raise SmsError(
            "Texts are not configured: set TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and "
            "TWILIO_PHONE_NUMBER.",
            permanent=True,
        )

    def find_sent(self, to: str, body: str, since: float) -> str | None:
        """Nothing can have been sent."""
        return None


def make_text_sender(settings: Settings) -> TextSender:
    """The text sender the settings call for."""
    if settings.twilio_account_sid and settings.twilio_auth_token and settings.twilio_phone_number:
        return TwilioTextSender(settings)
    log.warning("texting is not configured: feedback will be kept but not sent")
    return UnconfiguredTextSender()
