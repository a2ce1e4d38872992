"""Twilio Media Streams messages: what Twilio sends, parsed and checked; what the app sends back.

Inbound messages are JSON text frames: `connected`, `start`, `media` (base64 mu-law, 8 kHz, about
20 ms each), `dtmf`, `mark` (a mark the app sent has been played, or cleared) and `stop`. Anything
malformed raises `ProtocolError`; an event this module does not know becomes `Unknown`, because
Twilio may add events and a call must not end over one.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

from voice_app.errors import VoiceAppError

# A text frame larger than this is refused unread: a 20 ms media frame is about 300 bytes, and a
# start message with custom parameters a few KB.
MAX_MESSAGE_BYTES = 16 * 1024
# The most audio one media message may carry: 1 s of 8 kHz mu-law (Twilio sends 20 ms).
MAX_MEDIA_BYTES = 8000
DTMF_KEYS = frozenset("0123456789*#")


class ProtocolError(VoiceAppError):
    """A message that is not a well-formed Media Streams message."""


@dataclass(frozen=True)
class Connected:
    """The socket is open; `start` follows."""


@dataclass(frozen=True)
class Start:
    """The stream starts: which call, which stream, and the `<Parameter>`s of the TwiML."""

    stream_sid: str
    call_sid: str
    account_sid: str
    encoding: str
    sample_rate: int
    parameters: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Media:
    """A frame of the caller's audio (mu-law bytes)."""

    audio: bytes
    track: str = "inbound"


@dataclass(frozen=True)
class Dtmf:
    """The caller pressed a key."""

    digit: str


@dataclass(frozen=True)
class Mark:
    """A mark the app sent was reached in playback (or cleared)."""

    name: str


@dataclass(frozen=True)
class Stop:
    """The stream ended (the caller hung up, or the call moved on)."""


@dataclass(frozen=True)
class Unknown:
    """An event this app does not handle."""

    event: str


Event = Connected | Start | Media | Dtmf | Mark | Stop | Unknown


def parse(message: str | bytes) -> Event:
    """One inbound message as an event; `ProtocolError` for anything malformed."""
    if len(message) > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"a message of {len(message)} bytes (the limit is {MAX_MESSAGE_BYTES})")
    try:
        data = json.loads(message)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ProtocolError("not a JSON object")
    event = data.get("event")
    if not isinstance(event, str):
        raise ProtocolError("no event name")
    if event == "connected":
        return Connected()
    if event == "start":
        return _start(data)
    if event == "media":
        return _media(data)
    if event == "dtmf":
        digit = _text(_object(data, "dtmf"), "digit")
        if digit not in DTMF_KEYS:
            raise ProtocolError(f"dtmf digit {digit!r} is not a keypad key")
        return Dtmf(digit)
    if event == "mark":
        return Mark(_text(_object(data, "mark"), "name"))
    if event == "stop":
        return Stop()
    return Unknown(event[:40])


def _object(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    if not isinstance(value, dict):
        raise ProtocolError(f"{data.get('event')}: `{key}` is missing or not an object")
    return value


def _text(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise ProtocolError(f"`{key}` is missing or not text")
    return value


def _start(data: dict[str, Any]) -> Start:
    start = _object(data, "start")
    media_format = start.get("mediaFormat") or {}
    if not isinstance(media_format, dict):
        raise ProtocolError("start: `mediaFormat` is not an object")
    raw_parameters = start.get("customParameters") or {}
    if not isinstance(raw_parameters, dict):
        raise ProtocolError("start: `customParameters` is not an object")
    try:
        rate = int(media_format.get("sampleRate", 8000))
    except (TypeError, ValueError) as exc:
        raise ProtocolError("start: `sampleRate` is not a number") from exc
    return Start(
        stream_sid=_text(start, "streamSid"),
        call_sid=_text(start, "callSid"),
        account_sid=str(start.get("accountSid", "")),
        encoding=str(media_format.get("encoding", "audio/x-mulaw")),
        sample_rate=rate,
        parameters={str(k): str(v) for k, v in raw_parameters.items()},
    )


def _media(data: dict[str, Any]) -> Media:
    media = _object(data, "media")
    payload = _text(media, "payload")
    if len(payload) > MAX_MEDIA_BYTES * 4 // 3 + 4:
        raise ProtocolError(f"a media frame of {len(payload)} base64 characters is too large")
    try:
        audio = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ProtocolError(f"media payload is not base64: {exc}") from exc
    return Media(audio, str(media.get("track", "inbound")))


# What the app sends.


def media_message(stream_sid: str, audio: bytes) -> str:
    """Audio (mu-law, 8 kHz) for Twilio to play to the caller, queued after what was sent."""
    payload = base64.b64encode(audio).decode("ascii")
    return json.dumps({"event": "media", "streamSid": stream_sid, "media": {"payload": payload}})


def mark_message(stream_sid: str, name: str) -> str:
    """A mark Twilio echoes back once everything sent before it has been played."""
    return json.dumps({"event": "mark", "streamSid": stream_sid, "mark": {"name": name}})


def clear_message(stream_sid: str) -> str:
    """Stop playback: Twilio drops the queued audio and returns the pending marks."""
    return json.dumps({"event": "clear", "streamSid": stream_sid})
