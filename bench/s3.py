"""The corpus flow with its artifact store on S3-compatible object storage vs the same flow on a local store.

What it measures, on the same inputs in one invocation: `lmpipe run corpus --no-prefect --no-generate` as a
subprocess (a fresh, empty store each time) with

* ``local``: ``--home DIR`` (the peer: the store on local disk);
* ``s3``: ``--home s3://bucket/home`` on moto's S3 server (``moto[server]``), started here on 127.0.0.1,
  raw inputs on local disk;
* ``s3 + s3 inputs``: the raw inputs uploaded to the bucket first and given as ``s3://bucket/raw/*.jsonl``.

Columns: wall seconds and its ratio to the local run; peak local disk the run used outside the store (its
TMPDIR: build scratch, downloaded copies, sampled every 0.2 s) and the same at the end; the bytes of the store.
moto keeps objects in one Python process: its latency and throughput are not a real object store's, so the
ratio is an upper bound on the overhead of our S3 path plus moto's own cost, not a prediction for AWS.

Inputs: JSONL files of real English text (the demo's C4 sample, ``demo/text/en_c4.jsonl``), each document made
distinct by a prefix (the same construction as tests/test_scale.py), ``--files`` files of ``--docs`` documents.

    .venv/bin/python bench/s3.py                   # 4 files x 1,000 docs, --workers 2: ~3 min on 2 idle cores
    .venv/bin/python bench/s3.py --files 8 --docs 2000

Needs s3fs and moto[server] (exit 2 without them). Exit 1 when a run failed (its log's tail is printed).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def make_inputs(directory: Path, files: int, docs: int) -> list[str]:
    texts = [json.loads(line)["text"] for line in (REPO / "demo" / "text" / "en_c4.jsonl").open()]
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for f in range(files):
        path = directory / f"part-{f}.jsonl"
        with path.open("w") as out:
            for i in range(docs):
                out.write(json.dumps({"id": f"{f}-{i}", "text": f"Record {f}-{i} of the archive. "
                                      + texts[(f * docs + i) % len(texts)]}) + "\n")
        paths.append(str(path))
    return paths


def du(path: Path) -> int:
    total = 0
    for top, _dirs, names in os.walk(path):
        for name in names:
            try:
                total += os.lstat(os.path.join(top, name)).st_size
            except OSError:
                pass
    return total


def start_moto() -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    end = time.monotonic() + 60
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("moto server did not start in 60 s")


def run(home: str, inputs: list[str], workers: int, tmp: Path, env: dict[str, str]) -> dict[str, float]:
    """One corpus run; returns wall seconds and peak / final bytes under its TMPDIR."""
    tmp.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "flows.cli", "--home", home, "run", "corpus", "--preset", "tiny", "--no-prefect",
           "--no-generate", "--set", "quality_model.positives=[]", "--workers", str(workers),
           *[a for p in inputs for a in ("--input", p)]]
    peak = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.2):
            peak[0] = max(peak[0], du(tmp))

    thread = threading.Thread(target=sample, daemon=True)
    start = time.perf_counter()
    thread.start()
    proc = subprocess.run(cmd, cwd=REPO, env={**env, "TMPDIR": str(tmp), "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True)
    wall = time.perf_counter() - start
    stop.set()
    thread.join()
    if proc.returncode != 0:
        print((proc.stdout + proc.stderr)[-3000:], file=sys.stderr)
        raise SystemExit(1)
    return {"wall": wall, "peak_tmp": max(peak[0], du(tmp)), "end_tmp": du(tmp)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--docs", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    try:
        import fsspec
        import moto.server  # noqa: F401
        import s3fs  # noqa: F401
    except ImportError as e:
        print(f"needs s3fs and moto[server]: {e}", file=sys.stderr)
        return 2
    base = Path(tempfile.mkdtemp(prefix="bench-s3-"))
    inputs = make_inputs(base / "inputs", args.files, args.docs)
    moto, endpoint = start_moto()
    env = {**os.environ, "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
           "AWS_DEFAULT_REGION": "us-east-1"}
    os.environ.update({k: env[k] for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                            "AWS_DEFAULT_REGION")})
    try:
        fs = fsspec.filesystem("s3", use_listings_cache=False)
        rows = []
        local = run(str(base / "home"), inputs, args.workers, base / "tmp-local", env)
        rows.append(("local (peer)", local, du(base / "home")))
        for label, raw in (("s3", False), ("s3 + s3 inputs", True)):
            bucket = f"bench-{uuid.uuid4().hex[:10]}"
            fs.mkdir(bucket)
            given = inputs
            if raw:
                for p in inputs:
                    fs.put_file(p, f"{bucket}/raw/{os.path.basename(p)}")
                given = [f"s3://{bucket}/raw/*.jsonl"]
            r = run(f"s3://{bucket}/home", given, args.workers, base / f"tmp-{bucket}", env)
            rows.append((label, r, sum(fs.du(f"{bucket}/home", total=False).values())))
    finally:
        moto.terminate()
        moto.wait()
    docs = args.files * args.docs
    print(f"\ncorpus flow, {args.files} JSONL files x {args.docs} docs ({docs} docs), --workers {args.workers}, "
          f"{dt.date.today()}, {os.cpu_count()} CPUs; S3 = moto {__import__('moto').__version__} on 127.0.0.1\n")
    print("| store | wall s | ratio vs local | peak local temp MB | local temp at end MB | store MB |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, r, store_bytes in rows:
        print(f"| {label} | {r['wall']:.1f} | {r['wall'] / local['wall']:.2f}x | {r['peak_tmp'] / 1e6:.1f} | "
              f"{r['end_tmp'] / 1e6:.1f} | {store_bytes / 1e6:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
