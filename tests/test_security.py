"""Signature checks in the cases that break real deployments, and request limits."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask, request
from twilio.request_validator import RequestValidator

from tests.conftest import AUTH_TOKEN, CALLER, Twilio
from voice_app.app import create_app, get_services
from voice_app.web.signature import is_signed_by_twilio

CALL = "CA" + "8" * 32


def params(**extra: str) -> dict[str, str]:
    return {"CallSid": CALL, "From": CALLER, "CallStatus": "in-progress", **extra}


def signed_request_is_accepted(
    path: str, form: dict[str, str], signed_url: str, token: str, public_base_url: str
) -> bool:
    """Whether the app's check accepts a request to `path` signed for `signed_url`."""
    signature = RequestValidator(token).compute_signature(signed_url, form)
    app = Flask("signature-check")
    with app.test_request_context(
        path, method="POST", data=form, headers={"X-Twilio-Signature": signature}
    ):
        return is_signed_by_twilio(request, token, public_base_url)


def test_twilios_published_test_vector_passes() -> None:
    form = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+14158675309",
        "Digits": "1234",
        "From": "+14158675309",
        "To": "+18005551212",
    }
    signature = "RSOYDt4T1cUTdK1PDd93/VVr8B8="  # from Twilio's security documentation
    app = Flask("vector")
    with app.test_request_context(
        "/myapp.php?foo=1&bar=2",
        method="POST",
        data=form,
        headers={"X-Twilio-Signature": signature},
    ):
        assert is_signed_by_twilio(request, "12345", "https://mycompany.com")
        assert not is_signed_by_twilio(request, "54321", "https://mycompany.com")


@pytest.mark.parametrize(
    "query", ["name=O%27Brien", "q=a+b", "q=a%20b", "turn=0&probe=results", "x=%2B15551234567"]
)
def test_escapes_in_the_query_are_checked_as_sent(query: str) -> None:
    path = f"/voice/answer?{query}"
    assert signed_request_is_accepted(
        path, params(), f"https://line.example.org{path}", AUTH_TOKEN, "https://line.example.org"
    )


def test_a_port_in_the_public_url_is_kept() -> None:
    base = "https://line.example.org:8443"
    assert signed_request_is_accepted(
        "/voice/incoming", params(), f"{base}/voice/incoming", AUTH_TOKEN, base
    )
    assert not signed_request_is_accepted(
        "/voice/incoming",
        params(),
        "https://line.example.org:9999/voice/incoming",
        AUTH_TOKEN,
        base,
    )


def test_a_changed_query_breaks_the_signature() -> None:
    assert not signed_request_is_accepted(
        "/voice/answer?turn=1",
        params(),
        "https://line.example.org/voice/answer?turn=0",
        AUTH_TOKEN,
        "https://line.example.org",
    )


def test_forwarded_headers_are_ignored_unless_trusted(app_config: dict[str, Any]) -> None:
    # No PUBLIC_BASE_URL: the URL is rebuilt from the request, as a proxy in front forwarded it.
    form = params()
    public = "https://calls.example.org/voice/incoming"
    signature = RequestValidator(AUTH_TOKEN).compute_signature(public, form)
    headers = {
        "X-Twilio-Signature": signature,
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "calls.example.org",
    }
    for trusted, expected in ((False, 403), (True, 200)):
        app = create_app({**app_config, "public_base_url": "", "trust_forwarded": trusted})
        try:
            response = app.test_client().post("/voice/incoming", data=form, headers=headers)
            assert response.status_code == expected
        finally:
            get_services(app).store.dispose()


def test_an_oversized_body_is_refused(twilio: Twilio, caplog: pytest.LogCaptureFixture) -> None:
    response = twilio.post("/voice/incoming", **params(Padding="x" * 100_000))

    assert response.status_code == 413
    assert any("413" in record.message for record in caplog.records)


def test_malformed_query_values_are_a_bad_request(twilio: Twilio) -> None:
    twilio.twiml("/voice/incoming", **params())
    assert twilio.post("/voice/answer?turn=zero", **params()).status_code == 400
