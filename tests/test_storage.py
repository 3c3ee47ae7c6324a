"""Artifact store: id determinism, manifest written last, crash safety (exceptions and kill -9), lineage."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from storage.lineage import lineage_lines, raw_inputs
from storage.store import MANIFEST, TMP_PREFIX, ArtifactNotFound, ArtifactStore, compute_id

REPO = Path(__file__).resolve().parents[1]


def write_two(out: Path) -> dict:
    (out / "a.txt").write_text("hello")
    (out / "sub").mkdir()
    (out / "sub" / "b.bin").write_bytes(b"\x00\x01")
    return {"docs_out": 2}


def test_id_is_deterministic_and_sensitive():
    a = compute_id("mix", "1", {"x": 1, "y": [1, 2]}, ["dedup-1", "quality-2"])
    # key order in the config and parent order do not matter
    assert a == compute_id("mix", "1", {"y": [1, 2], "x": 1}, ["quality-2", "dedup-1"])
    assert a.startswith("mix-") and len(a) == len("mix-") + 12
    assert a != compute_id("mix", "2", {"x": 1, "y": [1, 2]}, ["dedup-1", "quality-2"])  # stage version
    assert a != compute_id("mix", "1", {"x": 2, "y": [1, 2]}, ["dedup-1", "quality-2"])  # config
    assert a != compute_id("mix", "1", {"x": 1, "y": [1, 2]}, ["dedup-1", "quality-3"])  # parents
    assert a != compute_id("tokens", "1", {"x": 1, "y": [1, 2]}, ["dedup-1", "quality-2"])  # kind


def test_build_then_skip(tmp_path):
    store = ArtifactStore(tmp_path)
    calls = []

    def fn(out: Path) -> dict:
        calls.append(1)
        return write_two(out)

    m, built = store.build("ingest", "1", {"k": 1}, [], fn, inputs=[{"path": "/x.warc", "sha256": "ab", "bytes": 3}])
    assert built and calls == [1]
    assert {f["path"] for f in m.files} == {"a.txt", "sub/b.bin"}
    assert m.stats == {"docs_out": 2}
    m2, built2 = store.build("ingest", "1", {"k": 1}, [], fn)
    assert not built2 and calls == [1] and m2.id == m.id
    assert [x.id for x in store.list()] == [m.id]
    manifest = json.loads((Path(m.path) / MANIFEST).read_text())
    assert manifest["files"][0]["sha256"] == "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"


def test_manifest_is_written_last(tmp_path, monkeypatch):
    """When the manifest is written, every data file is already in the directory."""
    store = ArtifactStore(tmp_path)
    import storage.store as st

    seen = {}
    real_dump = json.dump

    def spy_dump(obj, f, *a, **kw):
        if isinstance(obj, dict) and "files" in obj:
            d = Path(f.name).parent
            seen["files_present"] = sorted(p.name for p in d.rglob("*") if p.is_file() and p.suffix != ".part")
            seen["final_exists"] = Path(store.path(obj["id"])).exists()
        return real_dump(obj, f, *a, **kw)

    monkeypatch.setattr(st.json, "dump", spy_dump)
    m, _ = store.build("mix", "1", {}, [], write_two)
    assert seen["files_present"] == ["a.txt", "b.bin"]
    assert seen["final_exists"] is False  # the directory appears at its final path only with its manifest


def test_exception_inside_stage_leaves_nothing_complete(tmp_path):
    store = ArtifactStore(tmp_path)

    def boom(out: Path) -> dict:
        (out / "half.parquet").write_bytes(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        store.build("dedup", "1", {"t": 0.8}, [], boom)
    aid = compute_id("dedup", "1", {"t": 0.8}, [])
    assert not store.exists(aid)
    assert store.list() == []
    assert not list(tmp_path.rglob("half.parquet"))
    with pytest.raises(ArtifactNotFound):
        store.get(aid)


def test_kill_9_inside_stage_then_rerun(tmp_path):
    """A SIGKILL mid-stage leaves only a .tmp-* directory (kept for a resume: its owner is gone, its id is not
    built); the next build of a stage that does not resume starts it afresh and leaves nothing behind."""
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(REPO)!r})
        from storage.store import ArtifactStore
        def slow(out):
            (out / "part-0.parquet").write_bytes(b"x" * 1000)
            print("WRITING", flush=True)
            time.sleep(60)
            return {{}}
        ArtifactStore({str(tmp_path)!r}).build("filter", "1", {{}}, [], slow)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "WRITING"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    store = ArtifactStore(tmp_path)
    aid = compute_id("filter", "1", {}, [])
    assert not store.exists(aid) and store.list() == []
    leftovers = list((tmp_path / "filter").glob(f"{TMP_PREFIX}*"))
    assert leftovers == [store.work_dir(aid)]  # the half-written work is visible as tmp, never as an artifact
    assert store.clean_tmp() == 0  # no live owner, but a build may resume from it
    m, built = store.build("filter", "1", {}, [], write_two)
    assert built and store.exists(aid) and not list((tmp_path / "filter").glob(".*"))
    assert not (Path(m.path) / "part-0.parquet").exists()  # not resumable: the killed build's file is gone


def test_refresh_replaces_in_place(tmp_path):
    store = ArtifactStore(tmp_path)
    m1, _ = store.build("mix", "1", {}, [], write_two)
    time.sleep(1.1)

    def write_three(out: Path) -> dict:
        write_two(out)
        return {"docs_out": 3}

    m2, built = store.build("mix", "1", {}, [], write_three, refresh=True)
    assert built and m2.id == m1.id and m2.stats == {"docs_out": 3} and m2.created_at > m1.created_at
    assert len(store.list()) == 1


def test_missing_parent_is_refused(tmp_path):
    store = ArtifactStore(tmp_path)
    with pytest.raises(ArtifactNotFound):
        store.build("mix", "1", {}, ["quality-000000000000"], write_two)


def test_fsspec_memory_store():
    store = ArtifactStore("memory://lmpipe-test-store")
    m, built = store.build("mix", "1", {"a": 1}, [], write_two)
    assert built and store.exists(m.id)
    local = store.local_dir(m.id)
    assert (local / "a.txt").read_text() == "hello" and (local / "sub" / "b.bin").read_bytes() == b"\x00\x01"
    _, again = store.build("mix", "1", {"a": 1}, [], write_two)
    assert not again


def test_lineage_reaches_raw_inputs(tmp_path):
    store = ArtifactStore(tmp_path)
    raw = [{"path": "/data/cc.warc.gz", "sha256": "f" * 64, "bytes": 2048}]
    a, _ = store.build("ingest", "1", {}, [], lambda o: {"docs_out": 5}, inputs=raw)
    b, _ = store.build("langid", "1", {}, [a.id], lambda o: {"docs_in": 5, "docs_out": 4})
    tok, _ = store.build("tokenizer", "1", {}, [b.id], lambda o: {"vocab_size": 1024})
    c, _ = store.build("tokens", "1", {}, [b.id, tok.id], lambda o: {"splits": {"train": {"tokens": 99}}})
    lines = lineage_lines(store, c.id)
    text = "\n".join(lines)
    assert lines[0].startswith(c.id) and "splits.train.tokens=99" in lines[0]
    assert "/data/cc.warc.gz" in text and "[raw input]" in text and "docs_out=4" in text
    assert "(see above)" in text  # the shared langid ancestor is printed in full once
    assert raw_inputs(store, c.id) == raw
