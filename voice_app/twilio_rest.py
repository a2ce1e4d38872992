"""The twilio REST client, pointed at the configured API host, with a timeout."""

from __future__ import annotations

from typing import Any

from voice_app.config import Settings

REQUEST_TIMEOUT_SECONDS = 10.0


def twilio_client(settings: Settings) -> Any:
    """A twilio `Client` whose REST calls go to `TWILIO_API_BASE_URL`."""
    from twilio.http.http_client import TwilioHttpClient
    from twilio.rest import Client

    client = Client(
        settings.twilio_account_sid,
        settings.twilio_auth_token,
        http_client=TwilioHttpClient(timeout=REQUEST_TIMEOUT_SECONDS),
    )
    # The 2010 API (Messages, Recordings) lives on this host; tests point it at a local server.
    client.api.base_url = settings.twilio_api_base_url.rstrip("/")
    return client
