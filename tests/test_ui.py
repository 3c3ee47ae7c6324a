"""`lmpipe ui` against a real `prefect server start`: the UI finds its API on any port, and the server stops
with `lmpipe ui` (SIGTERM, and SIGKILL of the parent through PR_SET_PDEATHSIG). Marker `server`."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from procs import alive, children

REPO = Path(__file__).resolve().parents[1]
LMPIPE = Path(sys.executable).parent / "lmpipe"
pytestmark = pytest.mark.server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ui_settings(port: int, proc: subprocess.Popen, timeout: float = 120) -> dict:
    deadline = time.time() + timeout
    while True:
        assert proc.poll() is None, f"lmpipe ui exited with {proc.returncode}"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ui-settings", timeout=5) as r:
                return json.load(r)
        except OSError:
            assert time.time() < deadline, "the server never answered /ui-settings"
            time.sleep(1)


def _wait_gone(pids: list[int], timeout: float = 30) -> list[int]:
    deadline = time.time() + timeout
    while any(alive(p) for p in pids) and time.time() < deadline:
        time.sleep(0.5)
    return [p for p in pids if alive(p)]


@pytest.fixture
def ui_env(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(tmp_path / "prefect"), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               LMPIPE_HOME=str(tmp_path / "data"), PREFECT_LOGGING_LEVEL="WARNING")
    return env


@pytest.mark.parametrize("stop", ["SIGTERM", "SIGKILL"])
def test_ui_on_another_port_points_the_browser_at_its_own_api_and_stops_with_its_parent(ui_env, stop):
    port = _free_port()
    ui = subprocess.Popen([str(LMPIPE), "ui", "--port", str(port)], env=ui_env, cwd=REPO,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    servers: list[int] = []
    try:
        settings = _ui_settings(port, ui)
        assert settings["api_url"] == f"http://127.0.0.1:{port}/api"
        servers = children(ui.pid)
        assert servers, "no server process under lmpipe ui"
        ui.send_signal(getattr(signal, stop))
        ui.wait(30)
        assert _wait_gone(servers) == [], f"the server outlived `lmpipe ui` after {stop}"
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/ui-settings", timeout=2)
    finally:
        if ui.poll() is None:
            os.killpg(ui.pid, signal.SIGKILL)
            ui.wait()
        for pid in servers:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
