"""Callers' recordings on Twilio: fetched for transcription, then deleted.

A RecordingUrl arrives in a webhook, so it is not trusted: it is fetched only when it points at
the configured Twilio REST host and at a recording of the configured account.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Protocol
from urllib.parse import urlsplit

import requests

from voice_app.config import Settings
from voice_app.errors import RecordingFetchError
from voice_app.twilio_rest import REQUEST_TIMEOUT_SECONDS, twilio_client

log = logging.getLogger(__name__)

_RECORDING_PATH = re.compile(
    r"^/2010-04-01/Accounts/(?P<account>AC[0-9a-fA-F]{32})/Recordings/(?P<sid>RE[0-9a-fA-F]{32})"
    r"(\.(wav|mp3|json))?$"
)
# Bytes of 8 kHz 16-bit mono WAV per second, and headroom for headers and stereo recordings.
_BYTES_PER_SECOND = 16_000
_SIZE_HEADROOM = 2.5
# Longest a whole download may take, however the bytes trickle in.
_FETCH_SECONDS = 60.0


class RecordingSource(Protocol):
    """Where the app gets a recording's audio and how it removes it afterwards."""

    def fetch(self, recording_url: str) -> bytes:
        """The recording as WAV bytes."""
        ...

    def delete(self, recording_url: str) -> None:
        """Remove the recording from the provider."""
        ...


def recording_sid(settings: Settings, recording_url: str) -> str:
    """The recording SID of a RecordingUrl that points at our account on the configured host."""
    allowed = urlsplit(settings.twilio_api_base_url)
    url = urlsplit(recording_url)
    if (url.scheme, url.netloc) != (allowed.scheme, allowed.netloc):
        raise RecordingFetchError(
            f"refused to fetch a recording from {url.scheme}://{url.netloc}: recordings are only "
            f"fetched from TWILIO_API_BASE_URL ({settings.twilio_api_base_url})",
            retryable=False,
        )
    match = _RECORDING_PATH.match(url.path)
    if match is None or match["account"] != settings.twilio_account_sid or url.query:
        raise RecordingFetchError(
            f"refused to fetch {url.path!r}: not a recording of account TWILIO_ACCOUNT_SID",
            retryable=False,
        )
    return match["sid"]


class TwilioRecordings:
    """Fetches recordings over HTTPS with the account's credentials and deletes them by SID."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._max_bytes = int(
            max(60, settings.record_max_seconds) * _BYTES_PER_SECOND * _SIZE_HEADROOM
        )
        self._http = requests.Session()
        self._http.auth = (settings.twilio_account_sid, settings.twilio_auth_token)
        self._client = twilio_client(settings)

    def fetch(self, recording_url: str) -> bytes:
        """Download the recording as WAV; not-ready-yet and server errors are retryable."""
        sid = recording_sid(self._settings, recording_url)
        base = self._settings.twilio_api_base_url.rstrip("/")
        url = f"{base}/2010-04-01/Accounts/{self._settings.twilio_account_sid}/Recordings/{sid}.wav"
        try:
            with self._http.get(url, timeout=REQUEST_TIMEOUT_SECONDS, stream=True) as response:
                if response.status_code == 404:
                    # Twilio may answer 404 until the recording is processed.
                    raise RecordingFetchError(f"recording {sid} is not ready yet", retryable=True)
                if response.status_code != 200:
                    raise RecordingFetchError(
                        f"fetching recording {sid} failed with HTTP {response.status_code}",
                        retryable=response.status_code >= 500 or response.status_code == 429,
                    )
                body = bytearray()
                deadline = time.monotonic() + _FETCH_SECONDS
                for chunk in response.iter_content(64 * 1024):
                    body.extend(chunk)
                    if time.monotonic() > deadline:
                        # A body that trickles in forever would otherwise hold a worker forever.
                        raise RecordingFetchError(
                            f"recording {sid} took over {_FETCH_SECONDS:.0f} s to download",
                            retryable=True,
                        )
                    if len(body) > self._max_bytes:
                        raise RecordingFetchError(
                            f"recording {sid} is larger than {self._max_bytes} bytes; refused",
                            retryable=False,
                        )
                return bytes(body)
        except requests.RequestException as exc:
            raise RecordingFetchError(
                f"fetching recording {sid} failed: {exc}", retryable=True
            ) from exc

    def delete(self, recording_url: str) -> None:
        """Delete the recording from Twilio through the REST API; one already gone is fine."""
        from twilio.base.exceptions import TwilioRestException

        sid = recording_sid(self._settings, recording_url)
        try:
            self._client.recordings(sid).delete()
        except TwilioRestException as exc:
            if exc.status == 404:
                return  # deleted already (a retried job): the goal is met
            raise RecordingFetchError(
                f"deleting recording {sid} failed with HTTP {exc.status}",
                retryable=exc.status >= 500 or exc.status == 429,
            ) from exc
        except OSError as exc:
            raise RecordingFetchError(
                f"deleting recording {sid} failed: {exc}", retryable=True
            ) from exc
