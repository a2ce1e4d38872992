"""Live mode: the call runs over a Twilio Media Stream, and answers are transcribed as spoken.

- `protocol`: Media Streams messages in and out.
- `endpoint`: when an answer ends (silence window, in audio time).
- `sound`: prompts as mu-law frames, and the answer tone.
- `session`: `LiveCall`, one call's conversation, socket-free.
The WebSocket route that carries it is `voice_app.web.stream`.
"""
