"""Fetching and deleting callers' recordings over HTTP, against the local Twilio REST stand-in."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from tests.conftest import ACCOUNT_SID, AUTH_TOKEN, settings_for
from voice_app.audio import PHONE_RATE, to_wav_bytes
from voice_app.errors import RecordingFetchError
from voice_app.recordings import TwilioRecordings
from voice_app.simulator.standin import TwilioStandIn, new_sid

OTHER_ACCOUNT = "AC" + "1" * 32


def phone_wav(seconds: float) -> bytes:
    """A phone-quality (8 kHz, 16-bit, mono) WAV as Twilio serves recordings, with a tone."""
    t = np.arange(int(seconds * PHONE_RATE)) / PHONE_RATE
    return to_wav_bytes((3000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16), PHONE_RATE)


@pytest.fixture(scope="module")
def standin() -> Iterator[TwilioStandIn]:
    """One stand-in for the module: each test adds recordings of its own, with fresh SIDs."""
    server = TwilioStandIn(ACCOUNT_SID, AUTH_TOKEN).start()
    yield server
    server.stop()


@pytest.fixture
def recordings(standin: TwilioStandIn) -> TwilioRecordings:
    return TwilioRecordings(settings_for(standin.base_url))


@pytest.mark.parametrize("suffix", ["", ".wav"])
def test_fetch_returns_the_recording_exactly(
    standin: TwilioStandIn, recordings: TwilioRecordings, suffix: str
) -> None:
    wav = phone_wav(2.5)
    _, url = standin.add_recording(wav)

    assert recordings.fetch(url + suffix) == wav


def test_fetch_with_the_wrong_token_fails_and_is_not_retried(standin: TwilioStandIn) -> None:
    _, url = standin.add_recording(phone_wav(1))
    wrong = TwilioRecordings(settings_for(standin.base_url, twilio_auth_token="wrong-token"))

    with pytest.raises(RecordingFetchError) as refused:
        wrong.fetch(url)

    assert refused.value.retryable is False


def test_a_recording_on_another_host_is_refused(
    standin: TwilioStandIn, recordings: TwilioRecordings
) -> None:
    # Another server that would happily serve the same account's recording if it were asked.
    elsewhere = TwilioStandIn(ACCOUNT_SID, AUTH_TOKEN).start()
    try:
        sid, url = elsewhere.add_recording(phone_wav(1))

        with pytest.raises(RecordingFetchError) as refused:
            recordings.fetch(url)
        with pytest.raises(RecordingFetchError):
            recordings.delete(url)

        assert refused.value.retryable is False
        assert "TWILIO_API_BASE_URL" in str(refused.value)
        assert elsewhere.recording_exists(sid)
    finally:
        elsewhere.stop()


def test_a_recording_url_on_a_public_host_is_refused_before_any_request(
    recordings: TwilioRecordings,
) -> None:
    url = f"https://evil.example/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/{new_sid('RE')}"

    with pytest.raises(RecordingFetchError) as refused:
        recordings.fetch(url)

    # Had a request been tried, evil.example would not resolve: a retryable network error.
    assert refused.value.retryable is False
    assert "TWILIO_API_BASE_URL" in str(refused.value)


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(
            f"/2010-04-01/Accounts/{OTHER_ACCOUNT}/Recordings/{{sid}}", id="other-account"
        ),
        pytest.param(f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json", id="not-a-recording"),
        pytest.param(
            f"/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/{{sid}}/Transcriptions",
            id="below-a-recording",
        ),
        pytest.param(
            f"/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/{{sid}}?Download=true", id="query"
        ),
        pytest.param(
            f"/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/../Messages/{{sid}}",
            id="dot-segments",
        ),
    ],
)
def test_a_url_that_is_not_one_of_our_recordings_is_refused(
    standin: TwilioStandIn, recordings: TwilioRecordings, path: str
) -> None:
    sid, _ = standin.add_recording(phone_wav(1))
    url = standin.base_url + path.format(sid=sid)

    with pytest.raises(RecordingFetchError) as refused:
        recordings.fetch(url)
    with pytest.raises(RecordingFetchError):
        recordings.delete(url)

    assert refused.value.retryable is False
    assert standin.recording_exists(sid)


def test_a_recording_twilio_has_not_finished_is_worth_retrying(
    standin: TwilioStandIn, recordings: TwilioRecordings
) -> None:
    url = f"{standin.base_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/{new_sid('RE')}"

    with pytest.raises(RecordingFetchError) as not_ready:
        recordings.fetch(url)

    assert not_ready.value.retryable is True


def test_a_recording_far_longer_than_an_answer_can_be_is_refused(
    standin: TwilioStandIn,
) -> None:
    # The limit never falls below 60 s of answer (with headroom): 2 minutes of audio still
    # passes, 3 minutes does not.
    recordings = TwilioRecordings(settings_for(standin.base_url, record_max_seconds=1))
    _, long_url = standin.add_recording(phone_wav(120))
    _, too_long_url = standin.add_recording(phone_wav(180))

    assert len(recordings.fetch(long_url)) > 120 * PHONE_RATE * 2
    with pytest.raises(RecordingFetchError) as refused:
        recordings.fetch(too_long_url)

    assert refused.value.retryable is False


def test_delete_removes_the_recording_from_twilio(
    standin: TwilioStandIn, recordings: TwilioRecordings
) -> None:
    sid, url = standin.add_recording(phone_wav(1))
    kept_sid, _ = standin.add_recording(phone_wav(1))

    recordings.delete(url)

    assert not standin.recording_exists(sid)
    assert sid in standin.deleted
    assert kept_sid not in standin.deleted
    assert standin.recording_exists(kept_sid)
