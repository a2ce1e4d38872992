"""Twilio's own API description as a test fixture: Prism mocks it and checks every request.

`prism` (per test; the server itself starts once per session) gives a base URL to use as
TWILIO_API_BASE_URL. Behind it runs `prism mock` on Twilio's OpenAPI description of the 2010 API
(`<repo>/../shared/twilio-oai/twilio_api_v2010.json`), installed into `.tools` by
scripts/install.sh. Prism answers a request that breaks the description with 401 (no or wrong
kind of credentials), 404 (no such path) or 422 (bad parameters), and a valid one with the
description's example data.

Between the app and Prism sits a small recording proxy on 127.0.0.1, so a test can see each
exchange and ask `problems()` of it. That adds two checks Prism does not make: a query parameter
or form field the description does not declare for the operation is reported (Prism ignores
unknown names, so a misspelt `DateSent>` would pass it silently), and so is every violation
Prism lists in its `sl-violations` header about the request.

Prism runs without `--errors` on purpose: that flag also turns violations in Twilio's *response
examples* into HTTP 500, and the example for listing Messages breaks its own schema (relative
URIs in `format: uri` fields), so every listing would fail for reasons that are not the app's.
Requests that break the description are refused either way (see test_twilio_contract.py).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

REPO_ROOT = Path(__file__).resolve().parent.parent
OAI_FILE = Path(
    os.environ.get("TWILIO_OAI_FILE")
    or REPO_ROOT.parent / "shared" / "twilio-oai" / "twilio_api_v2010.json"
)
PRISM = REPO_ROOT / ".tools" / "node_modules" / ".bin" / "prism"
STARTUP_SECONDS = 60.0
# A test whose code pages through Prism's example lists forever is stopped after this many.
MAX_EXCHANGES_PER_TEST = 60
_FORWARDED_REQUEST_HEADERS = ("Authorization", "Content-Type", "Accept", "User-Agent")
_FORWARDED_RESPONSE_HEADERS = ("Content-Type", "sl-violations", "WWW-Authenticate")


@dataclass(frozen=True)
class Operation:
    """One operation of the description: its path template and the names it declares."""

    method: str
    template: str
    query: frozenset[str]
    form: frozenset[str]


@cache
def load_description() -> dict[str, Any]:
    """Twilio's OpenAPI description of the 2010 API, or a failure saying where it should be."""
    if not OAI_FILE.is_file():
        pytest.fail(
            f"Twilio's OpenAPI description is missing: expected {OAI_FILE} (the read-only "
            "shared/twilio-oai folder beside the repository's clone). Elsewhere, point "
            "TWILIO_OAI_FILE at twilio_api_v2010.json (github.com/twilio/twilio-oai).",
            pytrace=False,
        )
    description: dict[str, Any] = json.loads(OAI_FILE.read_text(encoding="utf-8"))
    return description


def find_operation(method: str, path: str) -> Operation | None:
    """The described operation a request's method and path match, if any."""
    for template, item in load_description()["paths"].items():
        pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
        operation = item.get(method.lower())
        if operation is None or not re.fullmatch(pattern, path):
            continue
        params = [*item.get("parameters", []), *operation.get("parameters", [])]
        query = frozenset(p["name"] for p in params if p.get("in") == "query")
        form: set[str] = set()
        for content in operation.get("requestBody", {}).get("content", {}).values():
            form.update(content.get("schema", {}).get("properties", {}))
        return Operation(method.upper(), template, query, frozenset(form))
    return None


@dataclass
class Exchange:
    """One request the app made through the mock, and Prism's answer."""

    method: str
    path: str
    query: list[tuple[str, str]]
    form: dict[str, str]
    status: int
    body: str
    violations: list[dict[str, Any]] = field(default_factory=list)

    def problems(self) -> list[str]:
        """Everything that says the request does not match Twilio's description (empty: valid)."""
        found = []
        if self.status >= 400:
            found.append(f"Prism answered HTTP {self.status}: {self.body[:600]}")
        for violation in self.violations:
            if violation.get("location", ["response"])[0] != "response":
                found.append(f"Prism: {violation.get('message')} at {violation.get('location')}")
        operation = find_operation(self.method, self.path)
        if operation is None:
            found.append(f"{self.method} {self.path} is not described")
            return found
        for name, _ in self.query:
            if name not in operation.query:
                found.append(f"query parameter {name!r} is not declared by {operation.template}")
        for name in self.form:
            if name not in operation.form:
                found.append(f"form field {name!r} is not declared by {operation.template}")
        return found


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # the exchanges are recorded; an access log line per request is noise


class TwilioMock:
    """Prism on Twilio's description, reached through a recording proxy on 127.0.0.1."""

    def __init__(self, prism_url: str) -> None:
        self.prism_url = prism_url
        self.exchanges: list[Exchange] = []
        self._lock = threading.Lock()
        self._upstream = requests.Session()
        self._server: BaseWSGIServer = make_server(
            "127.0.0.1", 0, self._wsgi, threaded=True, request_handler=_QuietHandler
        )
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """The base URL to give the app as TWILIO_API_BASE_URL."""
        return f"http://127.0.0.1:{self._server.server_port}"

    def stop(self) -> None:
        """Stop the proxy."""
        self._server.shutdown()
        self._server.server_close()

    @staticmethod
    def description() -> dict[str, Any]:
        """Twilio's OpenAPI description, as Prism serves it."""
        return load_description()

    @staticmethod
    def operation(method: str, path: str) -> Operation | None:
        """The described operation a request's method and path match, if any."""
        return find_operation(method, path)

    def only_exchange(self) -> Exchange:
        """The one exchange of the test so far (fails when there were none or several)."""
        with self._lock:
            exchanges = list(self.exchanges)
        assert len(exchanges) == 1, [f"{e.method} {e.path} -> {e.status}" for e in exchanges]
        return exchanges[0]

    def _wsgi(self, environ: Any, start_response: Any) -> Any:
        request = Request(environ)
        raw_body = request.get_data()
        form = dict(parse_qsl(raw_body.decode("utf-8", "replace"), keep_blank_values=True))
        with self._lock:
            runaway = len(self.exchanges) >= MAX_EXCHANGES_PER_TEST
        if runaway:
            # An endless walk through Prism's example pages (its example always has a next page).
            answer = Response("too many requests in one test", status=599)
            return answer(environ, start_response)
        upstream = self._upstream.request(
            request.method,
            self.prism_url + request.full_path.rstrip("?"),
            data=raw_body,
            headers={
                k: request.headers[k] for k in _FORWARDED_REQUEST_HEADERS if k in request.headers
            },
            timeout=30,
        )
        exchange = Exchange(
            method=request.method,
            path=request.path,
            query=parse_qsl(urlsplit(request.full_path).query, keep_blank_values=True),
            form=form if request.mimetype == "application/x-www-form-urlencoded" else {},
            status=upstream.status_code,
            body=upstream.text,
            violations=json.loads(upstream.headers.get("sl-violations", "[]")),
        )
        with self._lock:
            self.exchanges.append(exchange)
        headers = {
            k: upstream.headers[k] for k in _FORWARDED_RESPONSE_HEADERS if k in upstream.headers
        }
        answer = Response(upstream.content, status=upstream.status_code, headers=headers)
        return answer(environ, start_response)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_until_listening(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"prism exited with {process.returncode}:\n{log.read_text()[-2000:]}")
        try:
            requests.get(url, timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.2)  # still loading the 1.8 MB description
    pytest.fail(f"prism did not listen within {STARTUP_SECONDS} s:\n{log.read_text()[-2000:]}")


@pytest.fixture(scope="session")
def prism_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwilioMock]:
    """Prism mocking Twilio's 2010 API on 127.0.0.1, for the whole session."""
    description = OAI_FILE
    load_description()  # fails with a clear message when the description is missing
    if not PRISM.exists():
        pytest.fail(f"{PRISM} is missing: run scripts/install.sh to install Prism.", pytrace=False)
    port = _free_port()
    log = tmp_path_factory.mktemp("prism") / "prism.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(PRISM), "mock", str(description), "--host", "127.0.0.1", "--port", str(port)],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    mock = None
    try:
        _wait_until_listening(process, f"http://127.0.0.1:{port}/", log)
        mock = TwilioMock(f"http://127.0.0.1:{port}")
        yield mock
    finally:
        if mock is not None:
            mock.stop()
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def prism(prism_server: TwilioMock) -> TwilioMock:
    """The session's Prism mock, with this test's exchanges only."""
    prism_server.exchanges.clear()
    return prism_server
