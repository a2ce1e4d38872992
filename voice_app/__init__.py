"""The interview practice line: a phone number that asks, listens offline and gives feedback."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask


def create_app(config: Any = None, **adapters: Any) -> Flask:
    """Build the app (see `voice_app.app.create_app`); imported lazily to keep submodules light."""
    from voice_app.app import create_app as build

    return build(config, **adapters)


__all__ = ["create_app"]
