"""The artifact store and raw inputs on S3-compatible object storage, against a real server on 127.0.0.1.

The server is moto's S3 server (``moto[server]`` from PyPI, ``python -m moto.server``), started by a fixture and
stopped at its teardown. Chosen because it installs with pip (MinIO is a Go binary outside PyPI), speaks the S3
REST API over HTTP to the real s3fs/aiobotocore client, starts in ~0.2 s, and honours the conditional writes
(``If-None-Match: *``, ``If-Match``) that the build leases rely on; its objects live in the server's memory.

The corpus runs (marker ``s3``, ~2-4 min here) check that ``--home s3://…`` with ``s3://`` raw inputs writes
the bytes of the local run without downloading any sharded stage's parent, that a stage killed mid-way resumes
from the bucket with only its missing shards (the local scratch is deleted in between: another host), and that
``lmpipe lineage`` / ``show`` read the bucket.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("s3fs", reason="the S3 tests need s3fs (pip install s3fs)")
pytest.importorskip("moto.server", reason="the S3 tests need moto's server (pip install 'moto[server]')")

import fsspec  # noqa: E402

from curation.documents import extra_columns, read_documents, write_documents  # noqa: E402
from flows import dag  # noqa: E402
from storage import remote  # noqa: E402
from storage.store import ArtifactStore, Lease, _hostname  # noqa: E402
from test_scale import (LMPIPE, REPO, make_inputs, outputs, run_cli, second_build_waits,  # noqa: E402
                        wait_for)


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's S3 server on a free port of 127.0.0.1; the AWS_* variables point every client (and the CLI
    processes the tests start) at it. Stopped, and the variables restored, at teardown."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = (tmp_path_factory.mktemp("moto") / "server.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=log, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{port}"
    env = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        def up() -> bool:
            assert proc.poll() is None, f"moto server exited with {proc.returncode}"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return True
            except OSError:
                return False

        wait_for(up, timeout=60, every=0.1)
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture
def bucket(s3_server: str) -> str:
    """A new, empty bucket on the server (tests never share one)."""
    name = f"lmpipe-{uuid.uuid4().hex[:12]}"
    fsspec.filesystem("s3").mkdir(name)
    return name


def s3() -> fsspec.AbstractFileSystem:
    return fsspec.filesystem("s3", use_listings_cache=False)


def s3_outputs(home: str) -> dict[str, str]:
    """Like test_scale.outputs for a bucket: sha256 of every document file of every complete artifact."""
    fs, root = fsspec.core.url_to_fs(home, use_listings_cache=False)
    found = {}
    for p in sorted(fs.find(root)):
        rel = p[len(root):].lstrip("/")
        if rel.endswith(".parquet") and "/." not in "/" + rel and "/logs/" not in rel:
            found[rel] = hashlib.sha256(fs.cat_file(p)).hexdigest()
    return found


# ---------------------------------------------------------------------------------------------- raw inputs


def test_a_raw_input_url_is_hashed_by_streaming_and_counts_like_the_local_file(bucket: str, tmp_path: Path) -> None:
    local = make_inputs(tmp_path / "raw", files=2, docs=50)
    fs = s3()
    for p in local:
        fs.put_file(p, f"{bucket}/raw/{os.path.basename(p)}")
    for_id, manifest = dag._file_digests([f"s3://{bucket}/raw/*.jsonl"])  # a glob stands for its files
    local_id, local_manifest = dag._file_digests(local)
    assert for_id == local_id  # same names and contents: the same ingest id as the local run
    assert [m["path"] for m in manifest] == [f"s3://{bucket}/raw/{os.path.basename(p)}" for p in local]
    assert [m["bytes"] for m in manifest] == [os.path.getsize(p) for p in local]
    assert [m["sha256"] for m in manifest] == [m["sha256"] for m in local_manifest]
    # a digest is reused only while the object is unchanged (same ETag and size)
    fs.pipe_file(f"{bucket}/raw/part-0.jsonl", b'{"text": "replaced"}\n')
    again, _ = dag._file_digests([f"s3://{bucket}/raw/part-0.jsonl"])
    assert again[0]["sha256"] == hashlib.sha256(b'{"text": "replaced"}\n').hexdigest()


def test_a_file_added_to_the_bucket_is_seen_by_the_next_expansion(bucket: str) -> None:
    from curation.readers import expand_inputs

    fs = fsspec.filesystem("s3")  # the cached instance that readers get too
    fs.pipe_file(f"{bucket}/raw/a.jsonl", b'{"text": "a"}\n')
    assert expand_inputs([f"s3://{bucket}/raw/*.jsonl"]) == [f"s3://{bucket}/raw/a.jsonl"]
    fs.ls(f"{bucket}/raw")  # a listing in s3fs's cache, as a long-lived worker would hold
    other = fsspec.filesystem("s3", skip_instance_cache=True)  # another client adds a refresh's new input
    other.pipe_file(f"{bucket}/raw/b.jsonl", b'{"text": "b"}\n')
    assert expand_inputs([f"s3://{bucket}/raw/*.jsonl"]) == [f"s3://{bucket}/raw/a.jsonl",
                                                             f"s3://{bucket}/raw/b.jsonl"]


def test_documents_are_streamed_from_a_bucket(bucket: str, tmp_path: Path) -> None:
    rows = [{"id": str(i), "text": f"document {i} " * 50, "quality_score": i / 10} for i in range(12_000)]
    write_documents(rows, tmp_path / "docs-00000.parquet", schema_extra=["quality_score"])
    s3().put_file(str(tmp_path / "docs-00000.parquet"), f"{bucket}/a/docs-00000.parquet")
    url = f"s3://{bucket}/a/docs-00000.parquet"
    assert list(read_documents([url])) == list(read_documents([tmp_path / "docs-00000.parquet"]))
    assert list(extra_columns([url])) == ["quality_score"]


def test_quality_model_samples_its_negatives_from_shards_in_a_bucket(bucket: str, tmp_path: Path) -> None:
    from curation import stages
    from curation.config import QualityModelConfig

    texts = [json.loads(line)["text"] for line in (REPO / "demo" / "text" / "en_c4.jsonl").open()][:200]
    rows = [{"id": str(i), "text": t, "source": "crawl.warc.gz"} for i, t in enumerate(texts)]
    write_documents(rows, tmp_path / "docs-00000.parquet")
    s3().put_file(str(tmp_path / "docs-00000.parquet"), f"{bucket}/ingest/docs-00000.parquet")
    cfg = QualityModelConfig(positives=[str(REPO / "demo" / "text" / "zh_wiki_cmrc2018.jsonl")], max_negatives=100)
    local = stages.run_quality_model([str(tmp_path / "docs-00000.parquet")], tmp_path / "local", cfg)
    remote_stats = stages.run_quality_model([f"s3://{bucket}/ingest/docs-00000.parquet"], tmp_path / "s3", cfg)
    assert remote_stats["model"] == "trained" and remote_stats["negatives"] == 100
    drop = ("seconds",)
    assert {k: v for k, v in remote_stats.items() if k not in drop} == {k: v for k, v in local.items() if k not in drop}


# ---------------------------------------------------------------------------------------------- builds


def _shard_build(out: Path, fail_after: int | None, calls: list[int]) -> dict:
    """A toy resumable stage: shard i writes docs-i then its marker done/i (marker last, like datatrove)."""
    done = []
    for i in range(4):
        if (out / "done" / str(i)).exists():
            continue
        if fail_after is not None and len(done) == fail_after:
            raise RuntimeError("killed")  # what finished is copied to the bucket before the error goes up
        (out / f"docs-{i}.txt").write_text(f"shard {i}")
        (out / "done").mkdir(exist_ok=True)
        (out / "done" / str(i)).write_text("")
        done.append(i)
        calls.append(i)
    return {"run": done}


def test_a_failed_remote_build_resumes_from_the_bucket_on_another_host(bucket: str, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path / "host1"))
    store = ArtifactStore(f"s3://{bucket}/home")
    calls: list[int] = []
    with pytest.raises(RuntimeError, match="killed"):
        store.build("dedup", "1", {}, [], lambda out: _shard_build(out, 2, calls), resumable=True)
    aid = store.artifact_id("dedup", "1", {}, [])
    remote_tmp = store.remote_work_dir(aid)
    assert sorted(p.rsplit("/", 1)[-1] for p in store.fs.find(f"{remote_tmp}/done")) == ["0", "1"]
    # another host: nothing of the first build's scratch directory
    monkeypatch.setenv("TMPDIR", str(tmp_path / "host2"))
    (tmp_path / "host2").mkdir()
    m, built = ArtifactStore(f"s3://{bucket}/home").build("dedup", "1", {}, [],
                                                          lambda out: _shard_build(out, None, calls), resumable=True)
    assert built and m.stats == {"run": [2, 3]} and calls == [0, 1, 2, 3]
    assert sorted(f["path"] for f in m.files) == ["docs-0.txt", "docs-1.txt", "docs-2.txt", "docs-3.txt",
                                                  "done/0", "done/1", "done/2", "done/3"]
    assert store.fs.cat_file(f"{m.path}/docs-0.txt") == b"shard 0"
    assert not store.fs.exists(remote_tmp)  # the work area goes once the artifact is published
    assert not [p for p in store.fs.find(f"{bucket}/home") if "/.lease-" in p]


def test_clean_tmp_removes_the_remote_work_areas_of_complete_artifacts_only(bucket: str, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    store = ArtifactStore(f"s3://{bucket}/home")
    m, _ = store.build("mix", "1", {}, [], lambda out: (out / "a").write_text("x") and {})
    unfinished = "mix-0123456789ab"
    for aid in (m.id, unfinished):  # a publish killed before its cleanup; a build to resume
        store.fs.pipe(f"{store.remote_work_dir(aid)}/scratch/x", b"1")
    assert store.clean_tmp() == 1
    assert not store.fs.exists(store.remote_work_dir(m.id)) and store.fs.exists(store.remote_work_dir(unfinished))


def test_work_mirror_uploads_in_write_order_and_waits_for_settled_files(bucket: str, tmp_path: Path) -> None:
    fs = s3()
    (tmp_path / "a").write_text("old enough")
    os.utime(tmp_path / "a", (time.time() - 10, time.time() - 10))
    (tmp_path / "b").write_text("just written")  # the newest: it waits, and so would anything after it
    mirror = remote.WorkMirror(fs, f"{bucket}/w", tmp_path)
    assert mirror.sync() == 1 and mirror.synced("a") and not mirror.synced("b")
    assert mirror.sync(settled_only=False) == 1 and mirror.synced("b")
    assert mirror.sync(settled_only=False) == 0  # unchanged files are not uploaded again
    assert sorted(fs.find(f"{bucket}/w")) == [f"{bucket}/w/a", f"{bucket}/w/b"]


def test_restore_makes_the_local_scratch_what_the_bucket_holds(bucket: str, tmp_path: Path) -> None:
    fs = s3()
    fs.pipe(f"{bucket}/w/docs-0", b"complete")
    fs.pipe(f"{bucket}/w/done/0", b"")
    (tmp_path / "done").mkdir()
    (tmp_path / "docs-0").write_text("half")  # left by a kill before another host finished shard 0
    (tmp_path / "docs-1").write_text("finished here but never uploaded")
    (tmp_path / "done" / "1").write_text("")
    mirror = remote.WorkMirror(fs, f"{bucket}/w", tmp_path)
    assert mirror.restore() == 2
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()) == [
        "docs-0", "done/0"]
    assert (tmp_path / "docs-0").read_text() == "complete" and mirror.synced("docs-0")


# ---------------------------------------------------------------------------------------------- leases


def test_a_second_build_on_s3_waits_for_the_first(bucket: str, tmp_path: Path) -> None:
    fs = s3()
    second_build_waits(f"s3://{bucket}/home", lambda: [p for p in fs.find(f"{bucket}/home") if "/.lease-" in p],
                       {"TMPDIR": str(tmp_path)})


def test_an_abandoned_object_lease_is_taken_over_and_a_stale_takeover_fails(bucket: str) -> None:
    fs = s3()
    path = f"{bucket}/home/mix/.lease-mix-0123456789ab.json"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    record = {"host": _hostname(), "pid": int(dead.stdout), "heartbeat": time.time(), "started": time.time()}
    obj = remote._S3(fs, path)
    stale_etag = obj.put(json.dumps(record).encode(), create=True)
    with pytest.raises(Exception) as exists:  # a second create is refused by the server
        obj.put(b"{}", create=True)
    assert remote._precondition_failed(exists.value)
    with remote.ObjectLease.acquire(fs, path) as lease:
        assert lease is not None and lease.record.pid == os.getpid()
        body, _ = obj.get()
        assert json.loads(body)["pid"] == os.getpid()
        # a second waiter that judged the same dead version abandoned loses: its If-Match no longer matches
        with pytest.raises(Exception) as late:
            obj.put(json.dumps({**record, "pid": 1}).encode(), if_match=stale_etag)
        assert remote._precondition_failed(late.value)
        lease.check()  # still ours
    assert obj.get() is None  # released


def test_a_lease_that_lost_its_object_refuses_to_publish() -> None:
    lease = remote.ObjectLease(Lease(_hostname(), os.getpid(), time.time(), time.time()))
    lease.lost.set()
    with pytest.raises(RuntimeError, match="taken over"):
        lease.check()


# ---------------------------------------------------------------------------------------------- corpus runs


@pytest.fixture(scope="module")
def local_reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], Path]:
    """The corpus flow on a local store: the bytes the S3 runs must reproduce (4 input files = 4 shards)."""
    base = tmp_path_factory.mktemp("s3ref")
    inputs = make_inputs(base / "inputs", files=4, docs=1000)
    proc = run_cli(base / "home", inputs, "--workers", "2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return inputs, base / "home"


@pytest.mark.s3
def test_corpus_on_s3_gives_the_local_bytes_reads_parents_in_place_and_has_lineage(
        local_reference, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inputs, ref = local_reference
    fs = s3()
    for p in inputs:
        fs.put_file(p, f"{bucket}/raw/{os.path.basename(p)}")
    monkeypatch.setenv("LMPIPE_CACHE", str(tmp_path / "cache"))  # what is downloaded whole lands here
    home = f"s3://{bucket}/home"
    proc = run_cli(home, [f"s3://{bucket}/raw/*.jsonl"], "--workers", "2")  # type: ignore[arg-type]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert s3_outputs(home) == outputs(ref)
    store = ArtifactStore(home)
    assert {m.kind: m.id for m in store.list()} == {m.kind: m.id for m in ArtifactStore(ref).list()}
    (ingest,) = store.list("ingest")
    assert [i["path"] for i in ingest.inputs] == [f"s3://{bucket}/raw/part-{i}.jsonl" for i in range(4)]
    # no sharded stage downloaded its parent: only the scorer (quality), quality's shards (mix) and mix (report)
    cached = {p.name.rsplit("-", 1)[0] for p in (tmp_path / "cache").iterdir() if not p.name.startswith(".")}
    assert cached <= {"quality_model", "quality", "mix"}, cached
    assert not [p for p in fs.find(f"{bucket}/home") if "/.tmp-" in p or "/.lease-" in p]
    # lineage and show read the bucket
    (mix,) = store.list("mix")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    lineage = subprocess.run([*LMPIPE, "--home", home, "lineage", mix.id], cwd=REPO, env=env, capture_output=True,
                             text=True, timeout=120)
    assert lineage.returncode == 0, lineage.stderr
    for m in store.ancestors(mix.id):
        assert m.id in lineage.stdout
    assert f"s3://{bucket}/raw/part-0.jsonl" in lineage.stdout or "part-0.jsonl" in lineage.stdout
    show = subprocess.run([*LMPIPE, "--home", home, "show", ingest.id], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)
    assert show.returncode == 0 and json.loads(show.stdout)["id"] == ingest.id


@pytest.mark.s3
def test_a_stage_killed_on_s3_resumes_from_the_bucket_with_only_its_missing_shards(
        local_reference, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inputs, ref = local_reference
    fs = s3()
    home = f"s3://{bucket}/home"
    monkeypatch.setenv("TMPDIR", str(tmp_path / "host1"))  # the local scratch of the first run
    (tmp_path / "host1").mkdir()
    with monkeypatch.context() as m:  # finished shards reach the bucket within ~0.4 s (default: ~3 s)
        m.setenv("LMPIPE_SYNC_SECONDS", "0.25")
        proc = run_cli(home, inputs, "--workers", "1", wait=False)
    markers = lambda: fs.glob(f"{bucket}/home/langid/.tmp-langid-*/logs/langid/completions/*")  # noqa: E731
    try:
        wait_for(lambda: len(markers()) >= 1, timeout=300, every=0.05)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    done = len(markers())
    assert done < 4, "the stage finished before it could be killed: make the input shards larger"
    assert ArtifactStore(home).list("langid") == []  # a killed build is never published, even in part
    shutil.rmtree(tmp_path / "host1")  # resume on "another host": only the bucket has the finished shards
    monkeypatch.setenv("TMPDIR", str(tmp_path / "host2"))
    (tmp_path / "host2").mkdir()
    again = run_cli(home, inputs, "--workers", "1")
    assert again.returncode == 0, again.stdout + again.stderr
    (langid,) = ArtifactStore(home).list("langid")
    assert langid.stats["shards"] == {"total": 4, "run": 4 - done, "resumed": done, "retried": 0}, (done, again.stderr)
    got, want = s3_outputs(home), outputs(ref)
    assert got == want, {k: (got.get(k), want.get(k)) for k in set(got) | set(want) if got.get(k) != want.get(k)}
    assert not [p for p in fs.find(f"{bucket}/home") if "/.tmp-" in p or "/.lease-" in p]
