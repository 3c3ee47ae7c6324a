"""docker-compose.yml: no Docker engine runs here, so its structure is checked against what server mode needs, and
`docker compose config` (or Debian's `docker-compose` v1) validates it where a compose client exists.
The commands it runs are the ones tests/test_postgres.py runs for real (scripts/lmpipe-server.sh)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def _compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def test_compose_services_auth_and_gpu_profile():
    doc = _compose()
    services = doc["services"]
    assert {"postgres", "prefect-server", "deploy", "worker-cpu", "worker-gpu"} <= set(services)
    server = services["prefect-server"]
    assert server["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"].startswith("postgresql+asyncpg://")
    assert server["depends_on"]["postgres"]["condition"] == "service_healthy"
    # Basic auth on the server, the same secret on every client; the API is published on 127.0.0.1 only.
    auth = server["environment"]["PREFECT_SERVER_API_AUTH_STRING"]
    assert auth.startswith("${LMPIPE_AUTH:?")  # no default credentials: compose refuses to start without them
    text = (REPO / "docker-compose.yml").read_text()
    assert "change-me" not in text and ":-prefect}" not in text
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")
    worker_env = services["worker-cpu"]["environment"]  # what a UI run may ask of the worker (flows/policy.py)
    assert worker_env["LMPIPE_INPUT_ROOTS"] == "${LMPIPE_INPUT_ROOTS:-/inputs}"
    assert worker_env["LMPIPE_ALLOW_PRIVATE_CRAWL"] == "${LMPIPE_ALLOW_PRIVATE_CRAWL:-0}"
    assert all(p.startswith("127.0.0.1:") for p in server["ports"])
    assert "/api/health" in " ".join(server["healthcheck"]["test"])
    gpu = services["worker-gpu"]
    assert gpu["profiles"] == ["gpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    for name in ("deploy", "worker-cpu", "worker-gpu"):  # clients share the artifact volume, reach the server
        svc = services[name]
        assert "artifacts:/artifacts" in svc["volumes"]
        assert svc["environment"]["PREFECT_API_URL"] == "http://prefect-server:4200/api"
        assert svc["environment"]["PREFECT_API_AUTH_STRING"] == auth
        assert svc["depends_on"]["prefect-server"]["condition"] == "service_healthy"
    assert {"pgdata", "artifacts"} <= set(doc["volumes"])


def test_compose_runs_the_start_up_script():
    services = _compose()["services"]
    expected = {"prefect-server": ["server"], "deploy": ["deploy"], "worker-cpu": ["worker", "cpu"],
                "worker-gpu": ["worker", "gpu"]}
    script = REPO / "scripts" / "lmpipe-server.sh"
    assert script.is_file() and os.access(script, os.X_OK)
    for name, args in expected.items():
        assert services[name]["command"] == ["scripts/lmpipe-server.sh", *args], name
        build = services[name]["build"]
        assert (REPO / build["context"] / build["dockerfile"]).is_file()
    usage = subprocess.run([str(script)], capture_output=True, text=True, timeout=30)
    assert usage.returncode == 1 and "server | deploy | worker POOL" in usage.stderr
    # Server mode is never started without basic auth by accident.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "LMPIPE_"))}
    no_auth = subprocess.run([str(script), "server"], capture_output=True, text=True, timeout=30, env=env)
    assert no_auth.returncode == 2 and "PREFECT_SERVER_API_AUTH_STRING" in no_auth.stderr


def test_no_server_is_a_one_line_error():
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PREFECT_API_URL": f"http://127.0.0.1:{port}/api"}
    p = subprocess.run([sys.executable, "-m", "flows.deploy", "check"], capture_output=True, text=True, timeout=60,
                       env=env, cwd=REPO)
    assert p.returncode == 2 and "no Prefect server answers at" in p.stderr and "Traceback" not in p.stderr


def test_prefect_yaml_deployments():
    doc = yaml.safe_load((REPO / "prefect.yaml").read_text())
    deps = {d["name"]: d for d in doc["deployments"]}
    assert {"refresh", "tokenizer", "pretrain", "sft", "pipeline"} <= set(deps)
    refresh = deps["refresh"]
    assert refresh["entrypoint"].endswith(":corpus_flow")
    assert refresh["schedules"][0]["cron"] and refresh["concurrency_limit"]["limit"] == 1
    assert refresh["concurrency_limit"]["collision_strategy"] == "ENQUEUE"
    assert deps["pretrain"]["work_pool"]["name"] == deps["sft"]["work_pool"]["name"] == "gpu"
    for d in deps.values():  # every entrypoint exists and takes the parameters a UI re-run needs
        path, func = d["entrypoint"].split(":")
        src = (REPO / path).read_text()
        assert f"def {func}(" in src
        header = src.split(f"def {func}(", 1)[1].split(")", 1)[0]
        for param in ("preset", "overrides", "refresh", "from_artifact"):
            assert f"{param}:" in header, (func, param)


def _compose_cli() -> list[str] | None:
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):  # Debian's `docker-compose` (v1.29) also reads the compose spec
        return ["docker-compose"]
    return None


def test_compose_config_validates_where_compose_exists():
    cli = _compose_cli()
    if cli is None:
        pytest.skip("no compose client (docker compose plugin or docker-compose) installed")
    secrets = {"LMPIPE_AUTH": "admin:a-long-password", "POSTGRES_PASSWORD": "another-long-one"}
    for profile in ([], ["--profile", "gpu"]):
        p = subprocess.run([*cli, "-f", str(REPO / "docker-compose.yml"), *profile, "config", "-q"],
                           capture_output=True, text=True, cwd=REPO, env={**os.environ, **secrets})
        assert p.returncode == 0, p.stderr
    bare = {k: v for k, v in os.environ.items() if k not in secrets}
    p = subprocess.run([*cli, "-f", str(REPO / "docker-compose.yml"), "config", "-q"], capture_output=True,
                       text=True, cwd=REPO, env=bare)
    assert p.returncode != 0 and "LMPIPE_AUTH" in p.stderr + p.stdout


def test_compose_ray_profile_shares_the_store_with_the_cpu_worker():
    """Profile `ray`: a head and workers on the same image and artifact volume as the CPU worker, and a
    deployment that sends the corpus shards to that head (execution settings in `overrides`)."""
    services = _compose()["services"]
    head, worker = services["ray-head"], services["ray-worker"]
    assert head["profiles"] == worker["profiles"] == ["ray"]
    assert head["command"][:3] == ["ray", "start", "--head"] and "--port=6379" in head["command"]
    assert "--address=ray-head:6379" in worker["command"]
    for svc in (head, worker, services["worker-cpu"]):
        assert "artifacts:/artifacts" in svc["volumes"] and svc["environment"]["LMPIPE_HOME"] == "/artifacts"
    deps = {d["name"]: d for d in yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]}
    overrides = deps["refresh-ray"]["parameters"]["overrides"]
    assert overrides == {"execution.executor": "ray", "execution.ray_address": "ray-head:6379"}
    from flows.config import resolve_config

    assert resolve_config("tiny", overrides).execution.executor == "ray"
    assert '".[ray]"' in (REPO / "scripts" / "Dockerfile").read_text()  # the image has the `ray` command
