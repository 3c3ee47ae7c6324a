"""Against a real `prefect server start` (SQLite): a cron schedule registered by `lmpipe serve` creates runs,
and a scheduled run executes the corpus flow to completion.

This guards the `sqlalchemy<2.1` pin: with SQLAlchemy 2.1 Prefect 3.8.8's scheduler fails on every loop and
creates no run at all, silently. The ephemeral server never schedules, hence a real server here.
Marker `server` (not in the default set; `.ci/run` runs it).
"""

from __future__ import annotations

import json
import os
import socket
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from procs import alive, descendants

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, body: dict) -> list[dict]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(req, timeout=10))


def _wait(pred, timeout: float, what: str, procs: list[subprocess.Popen]):
    deadline = time.time() + timeout
    while True:
        try:
            out = pred()
            if out:
                return out
        except OSError:
            pass
        for p in procs:
            assert p.poll() is None, f"{p.args[:4]} exited while waiting for {what}"
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(1)


def test_cron_schedule_creates_and_runs_a_corpus_refresh(tmp_path):
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(tmp_path / "prefect"), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS="2", LMPIPE_HOME=str(tmp_path / "data"),
               PREFECT_LOGGING_LEVEL="WARNING")
    server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                               "--port", str(port)], env=env, cwd=REPO,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    serve = None
    try:
        _wait(lambda: urllib.request.urlopen(api + "/health", timeout=2).status == 200, 120, "server", [server])
        env_client = {**env, "PREFECT_API_URL": api}
        serve = subprocess.Popen([sys.executable, "-m", "flows.cli", "serve", "corpus", "--preset", "tiny",
                                  "--cron", "* * * * *", "--name", "every-minute"], env=env_client, cwd=REPO,
                                 stdout=open(tmp_path / "serve.log", "w"), stderr=subprocess.STDOUT)
        # The scheduler (not `serve`) creates the future runs: this is what SQLAlchemy 2.1 breaks.
        scheduled = _wait(lambda: [r for r in _post(api + "/flow_runs/filter", {"limit": 50})
                                   if r.get("deployment_id") and r["state_type"] == "SCHEDULED"],
                          90, "scheduled runs", [server, serve])
        assert all(r["parameters"]["preset"] == "tiny" for r in scheduled)
        # Filter by state on the server: the scheduler creates up to 100 future runs, which would crowd a
        # plain "first 50 runs" query.
        finished_states = {"flow_runs": {"state": {"type": {"any_": ["COMPLETED", "FAILED", "CRASHED"]}}},
                           "limit": 10}
        finished = _wait(lambda: [r for r in _post(api + "/flow_runs/filter", finished_states)
                                  if r.get("deployment_id")],
                         180, "a finished scheduled run", [server, serve])
        assert finished[0]["state_type"] == "COMPLETED", (tmp_path / "serve.log").read_text()[-3000:]
        manifests = list((tmp_path / "data").glob("mix/*/manifest.json"))
        assert len(manifests) == 1
    finally:
        for p in (serve, server):
            if p is not None:
                # a flow run that the scheduler started meanwhile is stopped with `serve`; its process pool's
                # fork server would outlive it (re-parented to pid 1), so the whole tree is stopped here
                tree = descendants(p.pid)
                p.terminate()
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()
                for pid in [pid for pid in tree if alive(pid)]:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass


def test_serve_without_a_server_is_a_clear_error(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["LMPIPE_HOME"] = str(tmp_path)
    p = subprocess.run([sys.executable, "-m", "flows.cli", "serve"], env=env, cwd=REPO, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 2 and "schedules need a running Prefect server" in p.stderr
    assert "Traceback" not in p.stderr
