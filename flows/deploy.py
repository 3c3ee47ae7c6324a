"""Server mode: check the Prefect server and its credentials, and apply the deployments of ``prefect.yaml``.

* ``check``: Prefect's own client answers a wrong ``PREFECT_API_AUTH_STRING`` with a 401 traceback deep inside
  httpx; this turns it (and "no server at that URL") into one line naming the setting to fix. Used by
  ``scripts/lmpipe-server.sh`` (``deploy``/``worker`` wait here for the server) and by ``lmpipe run``/``serve``
  when ``PREFECT_API_URL`` is set.
* ``deploy``: creates or updates every deployment listed in ``prefect.yaml``. Why not ``prefect deploy --all``:
  with the pinned fastapi (<0.155) Prefect 3.8.8's CLI creates the first deployment and then dies on its own
  "is a worker online?" query (``POST /work_pools/cpu/workers/filter`` with ``limit: null`` → HTTP 422), so
  ``--all`` stops after one. The same file stays valid for ``prefect deploy`` once that is fixed.

    python -m flows.deploy check [--wait SECONDS]    exit 0 when the server answers and accepts the credentials,
                                                     2 with a one-line reason otherwise
    python -m flows.deploy deploy [--file prefect.yaml] [--name NAME]…
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from flows.config import REPO_ROOT, UserError


def _auth_header(auth_string: str | None) -> dict[str, str]:
    if not auth_string:
        return {}
    return {"Authorization": "Basic " + base64.b64encode(auth_string.encode()).decode()}


def check_server(api_url: str | None = None, auth_string: str | None = None, wait: float = 0.0) -> str:
    """Return the server's version; raise ``UserError`` when it is unreachable or refuses the credentials.

    ``/health`` answers without credentials (Prefect exempts it), ``/admin/version`` needs them: so "down" and
    "wrong password" are told apart. With ``wait`` > 0, an unreachable server is retried for that many seconds.
    """
    api = (api_url or os.environ.get("PREFECT_API_URL") or "").rstrip("/")
    if not api:
        raise UserError("PREFECT_API_URL is not set; e.g. export PREFECT_API_URL=http://127.0.0.1:4200/api")
    auth = auth_string if auth_string is not None else os.environ.get("PREFECT_API_AUTH_STRING")
    deadline = time.monotonic() + wait
    while True:
        try:
            req = urllib.request.Request(api + "/admin/version", headers=_auth_header(auth))
            with urllib.request.urlopen(req, timeout=10) as r:
                return json.load(r)
        except urllib.error.HTTPError as e:
            if e.code == 401:
                what = "no credentials were sent" if not auth else "it refused PREFECT_API_AUTH_STRING"
                raise UserError(f"the Prefect server at {api} requires basic auth and {what}: set "
                                "PREFECT_API_AUTH_STRING=user:password to the server's "
                                "PREFECT_SERVER_API_AUTH_STRING") from None
            if e.code < 500 or time.monotonic() > deadline:
                raise UserError(f"the Prefect server at {api} answered HTTP {e.code}; is PREFECT_API_URL right "
                                "(it ends in /api)?") from None
        except (urllib.error.URLError, OSError) as e:
            if time.monotonic() > deadline:
                reason = getattr(e, "reason", e)
                raise UserError(f"no Prefect server answers at {api} ({reason}); start it "
                                "(scripts/lmpipe-server.sh server, or `lmpipe ui`) or fix PREFECT_API_URL") from None
        time.sleep(1.0)


def _expand_env(value: Any) -> Any:
    """``{{ $NAME }}`` placeholders (prefect.yaml's syntax for environment variables), resolved at deploy time."""
    if isinstance(value, str):
        def sub(m: re.Match[str]) -> str:
            if m.group(1) not in os.environ:
                raise UserError(f"prefect.yaml uses {{{{ ${m.group(1)} }}}} but ${m.group(1)} is not set")
            return os.environ[m.group(1)]
        return re.sub(r"\{\{\s*\$([A-Za-z_][A-Za-z0-9_]*)\s*\}\}", sub, value)
    if isinstance(value, list):
        return [_expand_env(v) for v in value]
    if isinstance(value, dict):
        return {k: _expand_env(v) for k, v in value.items()}
    return value


def load_deployments(prefect_file: str | Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(deployment specs, pull steps) of a prefect.yaml, environment placeholders resolved."""
    doc = yaml.safe_load(Path(prefect_file).read_text(encoding="utf-8"))
    os.environ.setdefault("LMPIPE_REPO", str(REPO_ROOT))
    return _expand_env(doc.get("deployments") or []), _expand_env(doc.get("pull") or [])


async def _apply(spec: dict[str, Any], pull: list[dict[str, Any]]) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import DeploymentScheduleCreate
    from prefect.client.schemas.objects import ConcurrencyOptions
    from prefect.client.schemas.schedules import construct_schedule
    from prefect.flows import load_flow_from_entrypoint
    from prefect.utilities.callables import parameter_schema

    entrypoint = spec["entrypoint"]
    fl = load_flow_from_entrypoint(str(REPO_ROOT / entrypoint))
    schedules = [DeploymentScheduleCreate(schedule=construct_schedule(cron=s["cron"], timezone=s.get("timezone")),
                                          active=s.get("active", True), parameters=s.get("parameters") or {})
                 for s in spec.get("schedules") or []]
    limit = spec.get("concurrency_limit")
    if isinstance(limit, dict):
        options = ConcurrencyOptions(collision_strategy=limit.get("collision_strategy", "ENQUEUE"))
        limit = limit["limit"]
    else:
        options = None
    pool = spec.get("work_pool") or {}
    async with get_client() as client:
        flow_id = await client.create_flow_from_name(fl.name)
        dep_id = await client.create_deployment(
            flow_id=flow_id, name=spec["name"], description=spec.get("description"), tags=spec.get("tags") or [],
            parameters=spec.get("parameters") or {}, schedules=schedules, concurrency_limit=limit,
            concurrency_options=options, work_pool_name=pool.get("name"), work_queue_name=pool.get("work_queue_name"),
            job_variables=pool.get("job_variables") or {}, entrypoint=entrypoint, path=None, pull_steps=pull,
            parameter_openapi_schema=parameter_schema(fl).model_dump_for_openapi(), enforce_parameter_schema=True)
    return f"{fl.name}/{spec['name']} ({dep_id})"


async def _ensure_pools(names: list[str]) -> list[str]:
    """Create the ``process`` work pools that do not exist yet (what ``prefect work-pool create --type process``
    does, in this process: each Prefect CLI call costs 3-5 s of imports here)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
    from prefect.workers.process import ProcessWorker

    created = []
    async with get_client() as client:
        for name in names:
            try:
                await client.read_work_pool(name)
            except ObjectNotFound:
                try:
                    await client.create_work_pool(WorkPoolCreate(
                        name=name, type="process", base_job_template=ProcessWorker.get_default_base_job_template()))
                    created.append(name)
                except ObjectAlreadyExists:  # a worker starting at the same time created it first
                    pass
    return created


def deploy_all(prefect_file: str | Path = REPO_ROOT / "prefect.yaml", names: list[str] | None = None) -> list[str]:
    """Create or update the deployments of ``prefect_file`` (all, or those in ``names``); returns their names."""
    specs, pull = load_deployments(prefect_file)
    pools = sorted({(s.get("work_pool") or {}).get("name") for s in specs} - {None})
    for name in asyncio.run(_ensure_pools(pools)):
        print(f"created work pool '{name}' (process)")
    unknown = set(names or []) - {s["name"] for s in specs}
    if unknown:
        raise UserError(f"no deployment named {sorted(unknown)} in {prefect_file}; "
                        f"it has: {', '.join(s['name'] for s in specs)}")
    return [asyncio.run(_apply(s, pull)) for s in specs if not names or s["name"] in names]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m flows.deploy", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check", help="wait for the server and check the credentials")
    c.add_argument("--wait", type=float, default=0.0, help="seconds to keep retrying an unreachable server")
    d = sub.add_parser("deploy", help="create/update the deployments of prefect.yaml")
    d.add_argument("--file", default=str(REPO_ROOT / "prefect.yaml"))
    d.add_argument("--name", action="append", help="only this deployment (repeatable)")
    d.add_argument("--wait", type=float, default=0.0, help="seconds to wait for the server first")
    a = p.parse_args(argv)
    try:
        if a.cmd == "check":
            version = check_server(wait=a.wait)
            print(f"Prefect server {version} at {os.environ['PREFECT_API_URL']}: credentials accepted")
        else:
            check_server(wait=a.wait)
            for name in deploy_all(a.file, a.name):
                print(f"deployed {name}")
    except UserError as e:
        print(f"lmpipe: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
