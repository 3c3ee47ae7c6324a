#!/usr/bin/env bash
# Server mode start-up commands: the one place that says how lmpipe's Prefect server, deployments and workers
# start. docker-compose.yml and the `server` tests (tests/test_postgres.py) both run this script.
#
#   scripts/lmpipe-server.sh server          Prefect API + UI (foreground). Database: $PREFECT_API_DATABASE_CONNECTION_URL
#                                            (postgresql+asyncpg://…; unset = SQLite under $PREFECT_HOME).
#                                            Basic auth: $PREFECT_SERVER_API_AUTH_STRING ("user:password"); refuses to
#                                            start without it unless LMPIPE_NO_AUTH=1.
#   scripts/lmpipe-server.sh deploy          wait for the server, check the credentials, create the process work
#                                            pools `cpu` and `gpu`, deploy every deployment of prefect.yaml
#                                            (flows/deploy.py)
#   scripts/lmpipe-server.sh worker POOL     wait for the server, then a process worker on POOL (foreground);
#                                            the `gpu` pool's worker takes one run at a time (one device)
#
# Environment: PREFECT_API_URL (http://127.0.0.1:4200/api) and PREFECT_API_AUTH_STRING (same "user:password")
# for `deploy` and `worker`; LMPIPE_HOME (the artifact store the workers write); LMPIPE_PYTHON (default python3);
# LMPIPE_SERVER_HOST / LMPIPE_SERVER_PORT for `server` (default 127.0.0.1:4200).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
py=${LMPIPE_PYTHON:-python3}
export PREFECT_SERVER_ANALYTICS_ENABLED=${PREFECT_SERVER_ANALYTICS_ENABLED:-false}
# Deployments' pull step (prefect.yaml) runs flows from this checkout.
export LMPIPE_REPO=$repo

# Wait until the API answers and accepts our credentials; a clear one-line error (exit 2) for wrong ones.
wait_for_server() { "$py" -m flows.deploy check --wait "${LMPIPE_WAIT_SECONDS:-180}"; }

cmd=${1:-}; shift || true
cd "$repo"
case "$cmd" in
server)
    if [ -z "${PREFECT_SERVER_API_AUTH_STRING:-}" ] && [ "${LMPIPE_NO_AUTH:-0}" != 1 ]; then
        echo "lmpipe-server: set PREFECT_SERVER_API_AUTH_STRING=user:password (basic auth), or LMPIPE_NO_AUTH=1" >&2
        exit 2
    fi
    exec "$py" -m prefect server start --host "${LMPIPE_SERVER_HOST:-127.0.0.1}" --port "${LMPIPE_SERVER_PORT:-4200}"
    ;;
deploy)
    # Work pools `cpu` and `gpu` (process type) + every deployment of prefect.yaml. Not `prefect deploy --all`:
    # under our fastapi pin it stops after the first deployment (see flows/deploy.py).
    exec "$py" -m flows.deploy deploy --wait "${LMPIPE_WAIT_SECONDS:-180}" --file "$repo/prefect.yaml"
    ;;
worker)
    pool=${1:?usage: $0 worker POOL}; shift || true
    wait_for_server
    limit=()
    [ "$pool" = gpu ] && limit=(--limit 1)
    # --type process creates the pool when `deploy` has not run yet.
    exec "$py" -m prefect worker start --pool "$pool" --type process "${limit[@]}" "$@"
    ;;
*)
    echo "usage: $0 server | deploy | worker POOL" >&2
    exit 1
    ;;
esac
