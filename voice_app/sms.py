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
    """Hands one text to the carrier; returns its message SID or raises `SmsError`."""

    def send(self, to: str, body: str) -> str:
        """Send `body` to the number `to`."""
        ...


class TwilioTextSender:
    """Sends texts with the twilio REST client, from the configured number."""

    def __init__(self, settings: Settings) -> None:
        self._client = twilio_client(settings)
        self._from = settings.twilio_phone_number

    def send(self, to: str, body: str) -> str:
        """Send one text; 4xx answers (but 429) are permanent, the rest may be retried."""
        from twilio.base.exceptions import TwilioRestException, TwilioServiceException

        try:
            message = self._client.messages.create(to=to, from_=self._from, body=body)
        except TwilioRestException as exc:
            raise _refused(exc.status, exc.code, exc.msg) from exc
        except TwilioServiceException as exc:  # the same refusal in RFC 9457 form
            raise _refused(exc.status, exc.code, exc.title) from exc
        except OSError as exc:
            raise SmsError(f"could not reach Twilio: {exc}", permanent=False) from exc
        return str(message.sid)


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

    def send(self, to: str, body: str) -> str:
        """Refuse, saying which settings are missing."""
        raise SmsError(
            "Texts are not configured: set TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and "
            "TWILIO_PHONE_NUMBER.",
            permanent=True,
        )


def make_text_sender(settings: Settings) -> TextSender:
    """The text sender the settings call for."""
    if settings.twilio_account_sid and settings.twilio_auth_token and settings.twilio_phone_number:
        return TwilioTextSender(settings)
    log.warning("texting is not configured: feedback will be kept but not sent")
    return UnconfiguredTextSender()
