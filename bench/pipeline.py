"""Wall time of the whole DAG: first run, fully cached re-run, and ``--refresh mix``, under Prefect and without.

The peer is the same DAG run with ``--no-prefect`` (plain function calls) in the same process tree, so the
ratio column is Prefect's orchestration cost on each kind of run. Each run is a fresh ``lmpipe`` process, as a
user would start it (Prefect's ephemeral server start-up included).

    .venv/bin/python bench/pipeline.py                  # tiny preset (~1-2 min)
    .venv/bin/python bench/pipeline.py --preset demo    # the `make run` workload (~10+ min)
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run(home: str, extra: list[str]) -> float:
    env = {**os.environ, "LMPIPE_HOME": home, "PREFECT_LOGGING_LEVEL": "WARNING"}
    env.pop("PREFECT_API_URL", None)
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "flows.cli", "run", "pipeline", "--no-generate", *extra],
                       cwd=REPO, env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"run failed ({' '.join(extra)}):\n{p.stderr[-3000:]}")
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="tiny")
    a = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as d1, tempfile.TemporaryDirectory() as d2:
        for label, extra in [("first run", []), ("cached re-run", []), ("--refresh mix", ["--refresh", "mix"])]:
            t_prefect = run(d1, ["--preset", a.preset, *extra])
            t_plain = run(d2, ["--preset", a.preset, "--no-prefect", *extra])
            rows.append((label, t_prefect, t_plain))
    print(f"# bench/pipeline.py  preset={a.preset}  {time.strftime('%Y-%m-%d')}  "
          f"{platform.machine()} {os.cpu_count()} cores  python {platform.python_version()}")
    print("| run | lmpipe (Prefect, ephemeral server) s | peer: --no-prefect s | ratio |")
    print("|---|---:|---:|---:|")
    for label, tp, tn in rows:
        print(f"| {label} | {tp:.1f} | {tn:.1f} | {tp / tn:.2f}x |")


if __name__ == "__main__":
    main()
