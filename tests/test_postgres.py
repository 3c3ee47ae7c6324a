"""Server mode against real components: PostgreSQL from Debian's packages on 127.0.0.1, a Prefect server on it with
basic auth, the work pools and deployments of prefect.yaml, a process worker. Everything is started by
scripts/postgres-local.sh and scripts/lmpipe-server.sh, the same commands docker-compose.yml runs.

Checked, in order (one stack for the module; the tests share its state and must run in file order):
credentials (401 without them, a one-line error from our CLI with wrong ones); the corpus refresh deployment on
the tiny preset, timed from an empty server; two "Custom run"s with ``refresh=["mix"]`` started at once: each
recomputes only mix (the manifests name the run that wrote them) and the second waits for the first (deployment
concurrency 1); the cron schedule creates scheduled runs; a worker killed mid-stage leaves nothing complete and a
re-run finishes; the server killed and restarted mid-run; the scheduled runs' parameters (incremental refresh).

Marker ``server`` (not in the default set; ``.ci/run`` runs it). Skips with the reason when PostgreSQL is neither
installed nor installable (scripts/postgres-local.sh exit code 3).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest

from flows import dag

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts"
AUTH = "lmpipe:test-secret"
CORPUS = dag.FLOWS["corpus"]  # ingest … mix
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
pytestmark = pytest.mark.server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request(url: str, method: str = "GET", body: Any = None, auth: str | None = AUTH) -> Any:
    headers = {"Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(auth.encode()).decode()
    data = json.dumps(body).encode() if body is not None else None
    with urllib.request.urlopen(urllib.request.Request(url, data=data, method=method, headers=headers),
                                timeout=15) as r:
        raw = r.read()
        return json.loads(raw) if raw else None


def _status(url: str, auth: str | None) -> int:
    try:
        _request(url, "POST", {"limit": 1}, auth=auth)
        return 200
    except urllib.error.HTTPError as e:
        return e.code


def _stop(p: subprocess.Popen | None, sig: int = signal.SIGTERM) -> None:
    """Stop a process started in its own session, with its children (the worker's flow-run processes)."""
    if p is None or p.poll() is not None:
        return
    try:
        os.killpg(p.pid, sig)
        p.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(p.pid, signal.SIGKILL)
        p.wait(timeout=10)


@dataclass
class Stack:
    tmp: Path
    api: str
    server_env: dict[str, str]
    client_env: dict[str, str]
    server: subprocess.Popen | None = None
    worker: subprocess.Popen | None = None
    timings: dict[str, float] = field(default_factory=dict)
    runs: dict[str, Any] = field(default_factory=dict)

    @property
    def data(self) -> Path:
        return Path(self.client_env["LMPIPE_HOME"])

    def call(self, method: str, path: str, body: Any = None) -> Any:
        return _request(self.api + path, method, body)

    def start_server(self) -> None:
        self.server = subprocess.Popen([str(SCRIPTS / "lmpipe-server.sh"), "server"], env=self.server_env,
                                       stdout=open(self.tmp / "server.log", "a"), stderr=subprocess.STDOUT,
                                       start_new_session=True)

    def start_worker(self) -> None:
        self.worker = subprocess.Popen([str(SCRIPTS / "lmpipe-server.sh"), "worker", "cpu"], env=self.client_env,
                                       stdout=open(self.tmp / "worker.log", "a"), stderr=subprocess.STDOUT,
                                       start_new_session=True)

    def wait(self, pred: Callable[[], Any], timeout: float, what: str) -> Any:
        deadline = time.time() + timeout
        while True:
            try:
                out = pred()
                if out:
                    return out
            except (OSError, urllib.error.HTTPError):
                pass
            for name in ("server", "worker"):
                p = getattr(self, name)
                assert p is None or p.poll() is None, f"{name} exited while waiting for {what}: {self.logs()}"
            assert time.time() < deadline, f"timed out ({timeout:.0f} s) waiting for {what}: {self.logs()}"
            time.sleep(0.5)

    def logs(self) -> str:
        return "\n".join(f"--- {n}\n" + (self.tmp / n).read_text(errors="replace")[-2500:]
                         for n in ("server.log", "worker.log") if (self.tmp / n).exists())

    def run_deployment(self, name: str, parameters: dict[str, Any]) -> str:
        """What the UI's Run → Custom run does: POST /deployments/{id}/create_flow_run."""
        dep = self.call("GET", f"/deployments/name/{name}")
        return self.call("POST", f"/deployments/{dep['id']}/create_flow_run", {"parameters": parameters})["id"]

    def wait_finished(self, run_id: str, timeout: float = 180) -> dict[str, Any]:
        return self.wait(lambda: (r := self.call("GET", f"/flow_runs/{run_id}"))["state_type"] in TERMINAL and r,
                         timeout, f"flow run {run_id}")

    def manifest(self, stage: str) -> dict[str, Any]:
        found = list(self.data.glob(f"{stage}/{stage}-*/manifest.json"))
        assert len(found) == 1, f"{stage}: {found}"
        return json.loads(found[0].read_text())

    def stage_markdown(self, run_id: str) -> dict[str, str]:
        """Stage → the markdown manifest artifact the run published in Prefect (what the UI shows)."""
        arts = self.call("POST", "/artifacts/filter",
                         {"artifacts": {"flow_run_id": {"any_": [run_id]}, "type": {"any_": ["markdown"]}},
                          "limit": 100, "offset": 0})
        stage_of_key = {f"{s.replace('_', '-')}-manifest": s for s in dag.ORDER}  # artifact keys: no '_'
        return {stage_of_key[a["key"]]: a["data"] for a in arts if a["key"] in stage_of_key}

    def stage_status(self, run_id: str) -> dict[str, str]:
        """Stage → 'built' / 'skipped', as the run's markdown artifacts say."""
        return {k: "built" if "**built**" in v else "skipped" for k, v in self.stage_markdown(run_id).items()}


@pytest.fixture(scope="module")
def stack():
    tmp = Path(tempfile.mkdtemp(prefix="lmpipe-server-test-"))
    pgdir = tmp / "pg"  # under /tmp: the `postgres` user must be able to reach it (pytest's tmp_path is 0700)
    os.chmod(tmp, 0o755)
    pg_port, api_port = _free_port(), _free_port()
    t = time.time()
    p = subprocess.run([str(SCRIPTS / "postgres-local.sh"), "start", str(pgdir), str(pg_port)],
                       capture_output=True, text=True, timeout=600)
    if p.returncode == 3:
        shutil.rmtree(tmp, ignore_errors=True)
        pytest.skip(f"PostgreSQL unavailable: {p.stderr.strip().splitlines()[-1]}")
    assert p.returncode == 0, p.stderr
    db_url = p.stdout.strip().splitlines()[-1]
    pg_seconds = time.time() - t

    base = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    base.update(PREFECT_HOME=str(tmp / "prefect"), LMPIPE_PYTHON=sys.executable, LMPIPE_WAIT_SECONDS="240")
    server_env = {**base, "PREFECT_API_DATABASE_CONNECTION_URL": db_url, "PREFECT_SERVER_API_AUTH_STRING": AUTH,
                  "LMPIPE_SERVER_PORT": str(api_port), "PREFECT_LOGGING_LEVEL": "WARNING",
                  # Test speed only: the scheduler's loop (default 60 s) and a queued run's re-check (30 s).
                  "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "5",
                  "PREFECT_SERVER_DEPLOYMENTS_CONCURRENCY_SLOT_WAIT_SECONDS": "2"}
    api = f"http://127.0.0.1:{api_port}/api"
    client_env = {**base, "PREFECT_API_URL": api, "PREFECT_API_AUTH_STRING": AUTH,
                  "LMPIPE_HOME": str(tmp / "data"), "PREFECT_WORKER_QUERY_SECONDS": "2"}
    s = Stack(tmp=tmp, api=api, server_env=server_env, client_env=client_env)
    s.timings["postgres initdb + start"] = pg_seconds
    try:
        s.timings["t0"] = time.time()
        s.start_server()
        s.start_worker()  # as compose does: the worker waits for the server while `deploy` runs
        d = subprocess.run([str(SCRIPTS / "lmpipe-server.sh"), "deploy"], env=client_env, capture_output=True,
                           text=True, timeout=400)
        assert d.returncode == 0, d.stderr[-3000:] + s.logs()
        assert "deployed corpus/refresh" in d.stdout and "deployed sft/sft" in d.stdout, d.stdout
        s.timings["server start + deploy"] = time.time() - s.timings["t0"]
        yield s
    finally:
        print("\n" + s.logs()[-4000:] if os.environ.get("LMPIPE_TEST_LOGS") else "")
        _stop(s.worker)
        _stop(s.server)
        subprocess.run([str(SCRIPTS / "postgres-local.sh"), "stop", str(pgdir)], capture_output=True, timeout=120)
        shutil.rmtree(tmp, ignore_errors=True)


def test_api_needs_credentials_and_wrong_ones_are_a_clear_error(stack):
    assert _status(stack.api + "/flows/filter", None) == 401
    assert _status(stack.api + "/flows/filter", "lmpipe:wrong") == 401
    assert _status(stack.api + "/flows/filter", AUTH) == 200
    env = {**stack.client_env, "PREFECT_API_AUTH_STRING": "lmpipe:wrong"}
    p = subprocess.run([sys.executable, "-m", "flows.cli", "run", "corpus", "--preset", "tiny"], env=env, cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, p.stderr[-2000:]
    assert "refused PREFECT_API_AUTH_STRING" in p.stderr and "Traceback" not in p.stderr
    assert not stack.data.exists() or not list(stack.data.glob("*/*/manifest.json"))  # nothing ran


def test_corpus_deployment_runs_on_the_tiny_preset(stack):
    run_id = stack.run_deployment("corpus/refresh", {"preset": "tiny"})
    run = stack.wait_finished(run_id, timeout=240)
    total = time.time() - stack.timings["t0"]
    assert run["state_type"] == "COMPLETED", stack.logs()
    for stage in CORPUS:
        m = stack.manifest(stage)
        assert m["flow_run_id"] == run_id and m["files"], stage
        assert all((stack.data / stage / m["id"] / f["path"]).is_file() for f in m["files"])
    assert stack.stage_status(run_id) == {s: "built" for s in CORPUS}
    mix = stack.manifest("mix")  # the UI's mix artifact: manifest summary and parents
    md = stack.stage_markdown(run_id)["mix"]
    assert mix["id"] in md and "**Parents**" in md and all(f"`{p}`" in md for p in mix["parents"])
    stack.runs["first"] = run_id
    print(f"\nserver mode, from an empty Postgres-backed server: server start + deploy "
          f"{stack.timings['server start + deploy']:.1f} s; + worker + one tiny corpus run {total:.1f} s "
          f"(run itself {run['total_run_time']:.1f} s); Postgres initdb + start "
          f"{stack.timings['postgres initdb + start']:.1f} s")


def test_a_ui_run_may_not_reach_private_addresses_or_files_outside_the_input_roots(stack):
    """Custom-run parameters are the UI user's; the worker refuses what only its operator may allow
    (flows/policy.py), before any stage runs."""
    run_id = stack.run_deployment("corpus/refresh", {"preset": "tiny", "inputs": ["/etc/passwd"],
                                                     "overrides": {"crawl.allow_private": True}})
    run = stack.wait_finished(run_id, timeout=240)
    assert run["state_type"] == "FAILED"
    message = run["state"]["message"]
    assert "refused by the worker" in message and "LMPIPE_ALLOW_PRIVATE_CRAWL" in message, message
    assert "inputs /etc/passwd is outside the worker's input roots" in message, message


def test_two_ui_reruns_of_mix_recompute_only_mix_and_are_queued(stack):
    assert "first" in stack.runs, "needs test_corpus_deployment_runs_on_the_tiny_preset"
    before = {s: stack.manifest(s) for s in CORPUS}
    a = stack.run_deployment("corpus/refresh", {"preset": "tiny", "refresh": ["mix"]})
    b = stack.run_deployment("corpus/refresh", {"preset": "tiny", "refresh": ["mix"]})
    ra, rb = stack.wait_finished(a, 240), stack.wait_finished(b, 240)
    assert ra["state_type"] == rb["state_type"] == "COMPLETED", stack.logs()
    # Only mix was recomputed, by each run; upstream manifests are untouched (still the first run's).
    for run_id in (a, b):
        assert stack.stage_status(run_id) == {**{s: "skipped" for s in CORPUS}, "mix": "built"}
    for s in CORPUS[:-1]:
        assert stack.manifest(s) == before[s]
    mix = stack.manifest("mix")
    assert mix["id"] == before["mix"]["id"] and mix["flow_run_id"] in (a, b)
    # Queued, not interleaved: one run ended before the other started, and the later one waited for a slot.
    first, second = sorted((ra, rb), key=lambda r: r["start_time"])
    assert first["end_time"] <= second["start_time"], (first["end_time"], second["start_time"])
    names = [st["name"] for st in stack.call("GET", f"/flow_run_states/?flow_run_id={second['id']}")]
    assert "AwaitingConcurrencySlot" in names, names
    assert mix["flow_run_id"] == second["id"]


def test_cron_schedule_creates_scheduled_runs_on_postgres(stack):
    dep = stack.call("GET", "/deployments/name/corpus/refresh")
    assert dep["schedules"][0]["schedule"]["cron"] == "0 3 * * *"
    body = {"flow_runs": {"deployment_id": {"any_": [dep["id"]]}, "state": {"type": {"any_": ["SCHEDULED"]},
                                                                              "name": {"any_": ["Scheduled"]}}},
            "limit": 10, "offset": 0}
    scheduled = stack.wait(lambda: stack.call("POST", "/flow_runs/filter", body), 90, "scheduled refresh runs")
    assert all(r["expected_start_time"][11:16] == "03:00" for r in scheduled), scheduled
    assert all(r["parameters"] == {"preset": "demo", "incremental": True} for r in scheduled)


def test_worker_killed_mid_stage_then_rerun_finishes(stack):
    assert "first" in stack.runs
    mix_id = stack.manifest("mix")["id"]
    params = {"preset": "tiny", "from_artifact": mix_id}
    run_id = stack.run_deployment("tokenizer/tokenizer", params)
    # The tokenizer stage writes into tokenizer/.tmp-<id> until its manifest is in place, holding the lease
    # tokenizer/.lease-<id>.json (host, pid, heartbeat) of the flow-run process doing the work.
    def lease() -> tuple[Path, int] | None:
        for f in (stack.data / "tokenizer").glob(".lease-*.json"):
            try:
                return f, int(json.loads(f.read_text())["pid"])
            except (OSError, ValueError, KeyError):
                return None  # being written: look again
        return None

    lease_file, flow_pid = stack.wait(lease, 180, "the tokenizer stage to start writing")
    tmp_dir = stack.data / "tokenizer" / (".tmp-" + lease_file.name[len(".lease-"):-len(".json")])
    stack.wait(tmp_dir.exists, 60, "its build directory")
    os.kill(flow_pid, signal.SIGKILL)  # the flow-run process doing the work, then its worker: a dead machine
    _stop(stack.worker, signal.SIGKILL)
    assert tmp_dir.exists() and not list((stack.data / "tokenizer").glob("tokenizer-*/manifest.json"))
    stack.call("POST", f"/flow_runs/{run_id}/set_state",  # what an operator (or a zombie automation) does
               {"state": {"type": "CRASHED", "message": "worker killed by the test"}, "force": True})

    stack.start_worker()
    rerun = stack.run_deployment("tokenizer/tokenizer", params)
    r = stack.wait_finished(rerun, 240)
    assert r["state_type"] == "COMPLETED", stack.logs()
    assert stack.stage_status(rerun) == {"tokenizer": "built", "tokens": "built"}
    tok = stack.manifest("tokenizer")
    assert tok["flow_run_id"] == rerun and tok["parents"] == [mix_id]
    assert not tmp_dir.exists()  # the dead run's half-written directory was removed, never published


def test_server_goes_away_mid_run(stack):
    """Kill the server while a refresh runs, restart it on the same Postgres (down ~25 s: its start-up).

    Measured behaviour (Prefect 3.8.8): the flow-run process keeps computing; its API calls retry on connection
    errors (PREFECT_CLIENT_MAX_RETRIES, exponential backoff, ~30 s in all) and the run completes. Should an
    outage outlast the retries, the run crashes and a re-run resumes from the artifacts: that path is taken
    here too when it happens, and then checked.
    """
    assert "first" in stack.runs
    old_dedup = stack.manifest("dedup")
    run_id = stack.run_deployment("corpus/refresh", {"preset": "tiny", "refresh": ["dedup"]})
    stack.wait(lambda: stack.manifest("dedup")["flow_run_id"] == run_id, 180, "dedup rebuilt by the run")
    down = time.time()
    _stop(stack.server)
    stack.server = None
    time.sleep(2)
    stack.start_server()
    stack.wait(lambda: _status(stack.api + "/flows/filter", AUTH) == 200, 180, "the restarted server")
    outage = time.time() - down
    if stack.worker.poll() is not None:  # compose restarts a dead worker (restart: unless-stopped); so do we
        stack.start_worker()
    r = stack.wait_finished(run_id, 240)
    resumed = None
    if r["state_type"] != "COMPLETED":
        resumed = stack.run_deployment("corpus/refresh", {"preset": "tiny"})
        assert stack.wait_finished(resumed, 240)["state_type"] == "COMPLETED", stack.logs()
        assert stack.stage_status(resumed)["dedup"] == "skipped"
    dedup = stack.manifest("dedup")
    assert dedup["flow_run_id"] == run_id and dedup["created_at"] != old_dedup["created_at"]
    assert stack.manifest("mix")["flow_run_id"] in (run_id, resumed)
    print(f"\nserver down {outage:.1f} s mid-run: run {r['state_type']}"
          + (f", re-run {resumed} completed from the artifacts" if resumed else " (client retries bridged it)"))


def test_scheduled_parameters_make_an_incremental_refresh(stack):
    """What the 03:00 run does (its schedule adds ``incremental: true``), on the tiny preset, through the worker:
    a corpus version, named by refs/corpus.json, and the run's `corpus-refresh` artifact says so (flows/refresh.py
    owns the semantics; this checks the deployment wiring)."""
    dep = stack.call("GET", "/deployments/name/corpus/refresh")
    params = {**dep["parameters"], **dep["schedules"][0]["parameters"], "preset": "tiny"}
    assert params["incremental"] is True
    run_id = stack.run_deployment("corpus/refresh", params)
    assert stack.wait_finished(run_id, 240)["state_type"] == "COMPLETED", stack.logs()
    ref = json.loads((stack.data / "refs" / "corpus.json").read_text())
    arts = stack.call("POST", "/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [run_id]},
                                                                  "key": {"any_": ["corpus-refresh"]}},
                                                    "limit": 5, "offset": 0})
    assert arts and "corpus version 1" in arts[0]["data"], arts
    assert json.dumps(ref).count("mix-") >= 1
