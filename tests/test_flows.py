"""End to end: the whole DAG on the tiny preset under a real (temporary) Prefect API.

One session-scoped run feeds several tests: the first run builds every stage; a second run skips every stage;
``refresh=['mix']`` rebuilds mix and everything downstream and nothing upstream; ``--from`` starts downstream
of an artifact; ``--no-prefect`` finds the very same artifact ids.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from flows import dag
from flows.config import UserError, resolve_config
from storage.lineage import lineage_lines, raw_inputs
from storage.store import ArtifactStore

REPO = Path(__file__).resolve().parents[1]
CORPUS = ["ingest", "langid", "filter", "dedup", "quality_model", "quality"]
DOWNSTREAM_OF_MIX = ["mix", "tokenizer", "tokens", "pretrain", "sft"]


@pytest.fixture(scope="module")
def first_run(prefect_harness, tmp_path_factory):
    from flows.prefect_flows import pipeline_flow

    home = str(tmp_path_factory.mktemp("lmpipe-home"))
    results = pipeline_flow(preset="tiny", home=home)
    return home, results


def _manifest_mtimes(home: str) -> dict[str, float]:
    return {p.parent.name: p.stat().st_mtime_ns for p in Path(home).glob("*/*/manifest.json")}


def test_first_run_builds_every_stage(first_run):
    home, results = first_run
    assert list(results) == dag.ORDER
    assert all(r["built"] for r in results.values())
    store = ArtifactStore(home)

    mix = store.get(results["mix"]["id"])
    train = [f for f in mix.file_paths(".parquet") if "/train-" in f]
    val = [f for f in mix.file_paths(".parquet") if "/val-" in f]
    assert train and val
    table = pq.read_table(train, columns=["lang", "quality_score", "dup_cluster_size"])
    langs = set(table.column("lang").to_pylist())
    assert {"zh", "en"} <= langs, langs
    assert all(0.0 <= q <= 1.0 for q in table.column("quality_score").to_pylist())

    pre = store.get(results["pretrain"]["id"])
    assert pre.stats["final_loss"] < pre.stats["first_loss"]  # loss falls
    sft = store.get(results["sft"]["id"])
    assert {"model.safetensors", "model_config.json"} <= {f["path"] for f in sft.files}

    # Lineage of the SFT model reaches the raw WARC and text files, and the SFT data.
    names = {os.path.basename(i["path"]) for i in raw_inputs(store, sft.id)}
    assert "cc-main-2020-34-sample.warc.gz" in names and "identity_zh_en.json" in names
    text = "\n".join(lineage_lines(store, sft.id))
    for stage in dag.ORDER:
        assert f"[{stage}]" in text or stage.startswith("eval")  # eval artifacts are leaves, not ancestors


def test_stats_are_published_to_prefect(first_run):
    import anyio
    from prefect.client.orchestration import get_client

    async def artifacts() -> dict[str, dict]:
        async with get_client() as client:
            # The REST call directly: prefect 3.8.8's read_artifacts() sends null filters that its server rejects
            # (422), and passing empty TaskRunFilter() objects silently drops flow-level artifacts (inner join).
            resp = await client._client.post("/artifacts/filter", json={"limit": 200, "sort": "CREATED_DESC"})
            resp.raise_for_status()
            return {a["key"]: a for a in reversed(resp.json()) if a.get("key")}  # the latest of each key

    published = anyio.run(artifacts)
    assert {"mix-stats", "mix-manifest", "dedup-stats", "sft-manifest", "lineage"} <= set(published)
    # sharded stages: a progress artifact, complete, saying how many shards and documents
    for stage in ("ingest", "langid", "filter", "quality"):
        progress = published[f"{stage}-progress"]
        assert progress["type"] == "progress" and float(progress["data"]) == 100.0
        assert "3/3 shards" in progress["description"], progress["description"]
    assert published["dedup-progress"]["description"].startswith("dedup:write: 3/3 shards")


def test_second_run_skips_every_stage(first_run):
    from flows.prefect_flows import pipeline_flow

    home, results = first_run
    before = _manifest_mtimes(home)
    again = pipeline_flow(preset="tiny", home=home)
    assert {k: v["id"] for k, v in again.items()} == {k: v["id"] for k, v in results.items()}
    assert not any(r["built"] for r in again.values())
    assert _manifest_mtimes(home) == before


def test_no_prefect_path_finds_the_same_artifacts(first_run):
    home, results = first_run
    cfg = resolve_config("tiny")
    plain = dag.run_flow_plain("pipeline", cfg, ArtifactStore(home), None, None)
    assert {k: v["id"] for k, v in plain.items()} == {k: v["id"] for k, v in results.items()}
    assert not any(r["built"] for r in plain.values())


def _task_runs(names: list[str]) -> dict[str, int]:
    """How many task runs of each name the Prefect API holds."""
    import anyio
    from prefect.client.orchestration import get_client

    async def every(client, path: str) -> list[dict]:
        rows: list[dict] = []
        while True:  # the API returns at most 200 per call: page through all of them
            resp = await client._client.post(path, json={"limit": 200, "offset": len(rows)})
            resp.raise_for_status()
            rows += resp.json()
            if len(resp.json()) < 200:
                return rows

    async def count() -> dict[str, int]:
        async with get_client() as client:
            # A subflow call also makes a task run (named after the flow) in its parent: not a stage's task.
            placeholders = {f["parent_task_run_id"] for f in await every(client, "/flow_runs/filter")}
            runs = [r["name"].split("-")[0] for r in await every(client, "/task_runs/filter")
                    if r["id"] not in placeholders]
            return {n: runs.count(n) for n in names}

    return anyio.run(count)


def test_refresh_mix_recomputes_mix_and_downstream_only(first_run):
    from flows.prefect_flows import pipeline_flow

    home, results = first_run
    before = _manifest_mtimes(home)
    tasks_before = _task_runs(CORPUS + DOWNSTREAM_OF_MIX)
    out = pipeline_flow(preset="tiny", home=home, refresh=["mix"])
    after = _manifest_mtimes(home)
    for s in CORPUS:
        assert not out[s]["built"] and after[results[s]["id"]] == before[results[s]["id"]], s
    for s in DOWNSTREAM_OF_MIX:
        assert out[s]["built"] and after[results[s]["id"]] > before[results[s]["id"]], s
    # Complete stages got no Prefect task (their manifests are published on the flow run); refreshed ones did.
    tasks_after = _task_runs(CORPUS + DOWNSTREAM_OF_MIX)
    assert {s: tasks_after[s] - tasks_before[s] for s in CORPUS + DOWNSTREAM_OF_MIX} == {
        **{s: 0 for s in CORPUS}, **{s: 1 for s in DOWNSTREAM_OF_MIX}}


def test_changed_mix_setting_gives_new_ids_downstream_only(first_run):
    """A changed mix threshold: upstream served from artifacts, mix and downstream get new ids."""
    home, results = first_run
    store = ArtifactStore(home)
    cfg = resolve_config("tiny", {"mix.seed": "7"})
    ids = {s: results[s]["id"] for s in CORPUS}
    assert all(dag.planned_id(s, cfg, ids) == results[s]["id"] for s in CORPUS)
    assert dag.planned_id("mix", cfg, ids) != results["mix"]["id"]
    assert store.exists(results["quality"]["id"])


def test_from_artifact_runs_only_downstream(first_run):
    from flows.prefect_flows import sft_flow

    home, results = first_run
    out = sft_flow(preset="tiny", home=home, from_artifact=results["pretrain"]["id"])
    assert out["pretrain"].get("given") and out["sft"]["id"] == results["sft"]["id"]
    # every ancestor is named, only sft (and its eval) was looked at; the pretrain model's eval is no ancestor
    assert set(out) == set(dag.ORDER) - {"eval"}


def lmpipe(*args: str, home: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "LMPIPE_HOME": home or os.environ.get("TMPDIR", "/tmp") + "/lmpipe-cli-test"}
    return subprocess.run([sys.executable, "-m", "flows.cli", *args], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=120)


@pytest.mark.parametrize("args, needle", [
    (["run", "--refresh", "mixx"], "unknown stage 'mixx'"),
    (["run", "--set", "dedup.thresh=0.7"], "unknown config key 'dedup.thresh'"),
    (["run", "--set", "nope=1"], "unknown config key 'nope'"),
    (["run", "--input", "/no/such/file.warc.gz"], "input file not found: /no/such/file.warc.gz"),
    (["run", "--from", "mix-000000000000"], "no artifact 'mix-000000000000'"),
    (["show", "sft-123456789abc"], "no artifact 'sft-123456789abc'"),
    (["lineage", "nonsense"], "no artifact 'nonsense'"),
    (["run", "nosuchflow"], "unknown flow 'nosuchflow'"),
    (["run", "--preset", "huge"], "unknown preset 'huge'"),
])
def test_cli_user_errors_are_one_line(args, needle, tmp_path):
    p = lmpipe(*args, home=str(tmp_path))
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lmpipe: error: ") and needle in lines[0], p.stderr
    assert "Traceback" not in p.stderr


def test_cli_input_directory_without_raw_files(tmp_path):
    """A directory input stands for its raw files; one with none (here only a non-input file) is an error."""
    d = tmp_path / "adir"
    d.mkdir()
    (d / "notes.txt").write_text("not an input format", encoding="utf-8")
    p = lmpipe("run", "--input", str(d), home=str(tmp_path))
    assert p.returncode == 2 and "holds no raw input file" in p.stderr and "Traceback" not in p.stderr


def test_cli_lists_and_shows(first_run):
    home, results = first_run
    p = lmpipe("artifacts", home=home)
    assert p.returncode == 0 and results["sft"]["id"] in p.stdout
    p = lmpipe("show", results["mix"]["id"], home=home)
    assert p.returncode == 0 and json.loads(p.stdout)["kind"] == "mix"
    p = lmpipe("lineage", results["sft"]["id"], home=home)
    assert p.returncode == 0 and "cc-main-2020-34-sample.warc.gz" in p.stdout


def test_cli_run_with_ephemeral_server_then_ui_shows_the_runs(tmp_path):
    """The `make run` path (CLI + Prefect's ephemeral SQLite server), then `lmpipe ui` over the same database."""
    import socket
    import time
    import urllib.request

    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(LMPIPE_HOME=str(tmp_path), PREFECT_LOGGING_LEVEL="WARNING")
    p = subprocess.run([sys.executable, "-m", "flows.cli", "run", "corpus", "--preset", "tiny"],
                       capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "mix" in p.stdout and "Lineage of mix-" in p.stdout and "[raw input]" in p.stdout
    # The same run again: every manifest is complete, so the CLI answers without starting Prefect (no run).
    again = subprocess.run([sys.executable, "-m", "flows.cli", "run", "corpus", "--preset", "tiny"],
                           capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"all {len(dag.FLOWS['corpus'])} stage(s) already complete" in again.stdout
    assert "no Prefect run created" in again.stdout
    status = {ln.split()[0]: ln.split()[1] for ln in again.stdout.splitlines() if ln.split()[:1] == ["ingest"]
              or ln.split()[:1] == ["mix"]}
    assert status == {"ingest": "skipped", "mix": "skipped"} and "Lineage of mix-" in again.stdout

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ui = subprocess.Popen([sys.executable, "-m", "flows.cli", "ui", "--port", str(port)], cwd=REPO, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}/api"
        deadline = time.time() + 90
        while True:
            try:
                urllib.request.urlopen(base + "/health", timeout=2)
                break
            except OSError:
                assert time.time() < deadline and ui.poll() is None, "prefect server did not start"
                time.sleep(0.5)
        req = urllib.request.Request(base + "/flow_runs/filter", data=b'{"limit": 50}', method="POST",
                                     headers={"Content-Type": "application/json"})
        runs = json.load(urllib.request.urlopen(req, timeout=10))
        assert [r["state_type"] for r in runs] == ["COMPLETED"]  # the first run only: the second made none
    finally:
        ui.terminate()
        ui.wait(timeout=30)


def test_kill_9_during_a_stage_then_rerun_finishes(tmp_path):
    """kill -9 of the whole run while pretrain is half-written: nothing half-written is taken as complete, and
    the re-run redoes only what was not finished."""
    import signal
    import time

    env = {**os.environ, "LMPIPE_HOME": str(tmp_path)}
    cmd = [sys.executable, "-m", "flows.cli", "run", "pipeline", "--preset", "tiny", "--no-prefect", "--no-generate"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 240
    while not list(tmp_path.glob("pretrain/.tmp-*")):
        assert proc.poll() is None and time.time() < deadline, "run ended before pretrain started"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()

    store = ArtifactStore(tmp_path)
    assert store.list("pretrain") == [] and len(store.list("tokens")) == 1
    p = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    status = {ln.split()[0]: ln.split()[1] for ln in p.stdout.splitlines()
              if ln.split() and ln.split()[0] in dag.ORDER and len(ln.split()) >= 3}
    assert status["pretrain"] == "built" and status["sft"] == "built"
    assert all(status[s] == "skipped" for s in ["ingest", "langid", "filter", "dedup", "quality_model", "quality",
                                                  "mix", "tokenizer", "tokens"]), status
    assert len(store.list("pretrain")) == 1 and not list(tmp_path.glob("*/.tmp-*"))


def test_input_globs_and_directories_expand_to_the_same_files(tmp_path: Path) -> None:
    """`--input DIR` and `--input 'DIR/*.jsonl'` stand for the files themselves: same config, same ingest id."""
    for name in ("b.jsonl", "a.jsonl"):
        (tmp_path / name).write_text('{"text": "hello"}\n', encoding="utf-8")
    (tmp_path / "crawl-log.jsonl").write_text("{}\n", encoding="utf-8")  # the crawler's log is no document
    (tmp_path / "c.jsonl.part").write_text("", encoding="utf-8")  # still being written
    files = [str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl")]
    by_dir = resolve_config("tiny", None, [str(tmp_path)])
    by_glob = resolve_config("tiny", None, [str(tmp_path / "[ab].jsonl")])
    by_files = resolve_config("tiny", None, files)
    assert list(by_dir.inputs) == list(by_glob.inputs) == files
    assert dag.plan_ids("corpus", by_dir, {})["ingest"] == dag.plan_ids("corpus", by_files, {})["ingest"]
    with pytest.raises(UserError, match="matches no file"):
        resolve_config("tiny", None, [str(tmp_path / "*.warc.gz")])
