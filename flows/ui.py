"""`lmpipe ui`: a local Prefect server and its UI on 127.0.0.1, on any port, stopped with its parent.

Run: ``lmpipe ui --port 4300`` (Ctrl-C, SIGTERM or the parent's death stops the server).

Two things the bare ``prefect server start --port N`` gets wrong for us:

* The UI asks ``/ui-settings`` where the API is, and Prefect answers from ``PREFECT_UI_API_URL``, else
  ``PREFECT_API_URL``, else ``PREFECT_SERVER_API_HOST``/``PORT`` (default 4200), never from ``--port``: on any
  other port the browser showed "Can't connect to Server API". The child gets all three set to the port it serves
  on (a ``PREFECT_UI_API_URL`` the user set, e.g. behind a proxy, is kept).
* ``subprocess.call`` left the server running, orphaned, when ``lmpipe ui`` got SIGTERM (the default action
  ends Python without running any cleanup). SIGTERM and SIGINT now stop the child and wait for it, and the child
  is asked (Linux ``PR_SET_PDEATHSIG``) to get SIGTERM when its parent dies, even by SIGKILL.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from typing import Any

_PR_SET_PDEATHSIG = 1
STOP_TIMEOUT_S = 15.0


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the parent dies (Linux; elsewhere a no-op)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def server_env(port: int, host: str = "127.0.0.1", base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of the server process: its API and the UI's idea of it on ``host:port``."""
    env = dict(os.environ if base is None else base)
    env["PREFECT_SERVER_API_HOST"] = host
    env["PREFECT_SERVER_API_PORT"] = str(port)
    api = f"http://{host}:{port}/api"
    env["PREFECT_API_URL"] = api  # the server's own services talk to this server, not to another one
    env.setdefault("PREFECT_UI_API_URL", api)
    return env


def start_server(port: int, host: str = "127.0.0.1", **popen: Any) -> subprocess.Popen[bytes]:
    """``prefect server start`` on ``host:port`` as a child that dies with this process."""
    cmd = [sys.executable, "-m", "prefect", "server", "start", "--host", host, "--port", str(port)]
    return subprocess.Popen(cmd, env=server_env(port, host), preexec_fn=_die_with_parent, **popen)


def stop(proc: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT_S) -> int:
    """SIGTERM the server, SIGKILL it after ``timeout`` seconds; its exit code."""
    if proc.poll() is None:
        proc.terminate()
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait()


def serve(port: int, host: str = "127.0.0.1") -> int:
    """Run the server in the foreground until it exits or this process gets SIGTERM/SIGINT; the exit code."""
    proc = start_server(port, host)
    stopping: list[int] = []

    def on_signal(signum: int, _frame: Any) -> None:
        stopping.append(signum)
        raise KeyboardInterrupt

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        return proc.wait()
    except KeyboardInterrupt:
        stop(proc)
        return 128 + (stopping[0] if stopping else signal.SIGINT)
    finally:
        if proc.poll() is None:
            stop(proc)
        for s, handler in previous.items():
            signal.signal(s, handler)
