"""Incremental corpus refresh (``flows/refresh.py``) on real text: C4 and zh Wikipedia lines from demo/text.

Version 1 is made from an input directory holding file A (under Prefect, the session harness); then file B
(more C4 lines plus a near-duplicate of a document kept in version 1) is dropped into the directory and a plain
refresh makes version 2 from B alone: B is the only file ingested, the cross-version near-duplicate is dropped
against the persisted dedup index, and version 2's lineage names version 1 and every raw file. A third refresh
with no new file makes nothing. A refresh killed between dedup and commit, whose retry also sees a newer file,
neither loses nor duplicates documents. Slow: crawl seeds (a local HTTP server) feed the refresh.

    .venv/bin/python -m pytest -q tests/test_refresh.py -m "slow or not slow"
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from flows import dag, refresh
from flows.config import resolve_config
from storage.lineage import lineage_lines, raw_inputs
from storage.store import ArtifactStore

DEMO = Path(__file__).resolve().parents[1] / "demo" / "text"


def _lines(name: str) -> list[str]:
    return (DEMO / name).read_text(encoding="utf-8").splitlines()


def _write(path: Path, lines: list[str]) -> int:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return len(lines)


def _docs(store: ArtifactStore, artifact_id: str, *columns: str) -> list[dict]:
    return pq.read_table(store.get(artifact_id).file_paths(".parquet"), columns=list(columns)).to_pylist()


def _manifests(home: Path) -> dict[str, int]:
    return {str(p.relative_to(home)): p.stat().st_mtime_ns for p in home.glob("*/*/manifest.json")}


def _run(home: Path, inbox: Path) -> dict:
    cfg = resolve_config("tiny")
    return refresh.run_plain(cfg, ArtifactStore(home), refresh.expand_inputs([str(inbox)]))


@pytest.fixture(scope="module")
def version1(prefect_harness, tmp_path_factory):
    """Version 1 of A (60 C4 + 80 zh Wikipedia documents), made by the Prefect corpus flow."""
    from flows.prefect_flows import corpus_flow

    root = tmp_path_factory.mktemp("refresh")
    inbox, home = root / "inbox", root / "home"
    inbox.mkdir()
    n_a = _write(inbox / "a.jsonl", _lines("en_c4.jsonl")[:60] + _lines("zh_wiki_cmrc2018.jsonl")[:80])
    (inbox / ".c.jsonl.part").write_text("half-written by a crawler\n")  # ignored: hidden, partial
    out = corpus_flow(preset="tiny", inputs=[str(inbox)], home=str(home), incremental=True)
    return root, out, n_a


def _copy(version1, tmp_path: Path) -> tuple[Path, Path]:
    """A private copy of the version-1 store and inbox (tests below add files and versions to it)."""
    root = version1[0]
    shutil.copytree(root / "inbox", tmp_path / "inbox")
    shutil.copytree(root / "home", tmp_path / "home")
    return tmp_path / "inbox", tmp_path / "home"


def _b_lines(store: ArtifactStore, v1: str) -> tuple[list[str], dict]:
    """60 more C4 lines, and a near-duplicate of the longest English document kept in version 1."""
    kept = [d for d in _docs(store, v1, "id", "text", "lang") if d["lang"] == "en"]
    original = max(kept, key=lambda d: len(d["text"]))
    words = original["text"].split(" ")
    words[len(words) // 2] = "remarkably"  # one word changed, one sentence added: Jaccard well above 0.8
    copy = {"id": "copy-1", "text": " ".join(words) + " Updated this week.", "url": "https://example.org/copy"}
    return _lines("en_c4.jsonl")[60:120] + [json.dumps(copy, ensure_ascii=False)], original


def test_first_refresh_under_prefect_makes_version_1(version1):
    root, out, n_a = version1
    store = ArtifactStore(root / "home")
    assert out["refresh"]["status"] == "new_version" and out["refresh"]["version"] == 1
    assert [os.path.basename(f) for f in out["refresh"]["new_inputs"]] == ["a.jsonl"]
    assert store.get(out["ingest"]["id"]).stats["docs_in"] == n_a
    ref = store.read_ref("corpus")
    assert ref["id"] == out["mix"]["id"] and ref["version"] == 1 and ref["index_segments"]
    assert store.get(out["mix"]["id"]).stats["docs_in"] > 100  # most of A's 140 documents survive


def test_second_refresh_processes_only_the_new_file_then_nothing_new(version1, tmp_path):
    inbox, home = _copy(version1, tmp_path)
    store = ArtifactStore(home)
    v1 = store.read_ref("corpus")["id"]
    v1_docs = {d["id"] for d in _docs(store, v1, "id")}
    b_lines, original = _b_lines(store, v1)
    n_b = _write(inbox / "b.jsonl", b_lines)
    before = _manifests(home)

    out = _run(home, inbox)
    assert out["refresh"]["status"] == "new_version" and out["refresh"]["version"] == 2
    assert out["refresh"]["previous"] == v1 and out["refresh"]["covered"] == 1
    # Only B was extracted and filtered: A's artifacts are untouched, every delta stage saw B's documents only.
    ingest = store.get(out["ingest"]["id"])
    assert ingest.stats["docs_in"] == n_b and [os.path.basename(i["path"]) for i in ingest.inputs] == ["b.jsonl"]
    assert all(before[k] == v for k, v in _manifests(home).items() if k in before)
    for stage in ("langid", "filter", "dedup", "quality"):
        assert store.get(out[stage]["id"]).stats["docs_in"] <= n_b, stage
    # The near-duplicate of a version-1 document is dropped against the persisted index.
    dedup = store.get(out["dedup"]["id"])
    assert dedup.stats["duplicates_of_index"] == 1 and dedup.stats["dropped"] == {"near_duplicate": 1}
    removed = pq.read_table([f for f in dedup.file_paths(".parquet", exclude_dirs=()) if "/removed/" in f]).to_pylist()
    assert [(r["url"], r["duplicate_of"]) for r in removed] == [("https://example.org/copy", original["id"])]
    # Version 2 = version 1's documents + B's survivors, and names version 1 as a parent.
    v2 = store.get(out["mix"]["id"])
    v2_docs = {d["id"] for d in _docs(store, v2.id, "id")}
    assert v1 in v2.parents and v1_docs < v2_docs
    assert len(v2_docs) == len(v1_docs) + store.get(out["quality"]["id"]).stats["docs_out"]
    assert "https://example.org/copy" not in {d["url"] for d in _docs(store, v2.id, "url")}
    raw = {os.path.basename(i["path"]) for m in store.ancestors(v2.id) if m.kind == "ingest" for i in m.inputs}
    assert raw == {"a.jsonl", "b.jsonl"} and raw <= {os.path.basename(i["path"]) for i in raw_inputs(store, v2.id)}
    tree = "\n".join(lineage_lines(store, v2.id))
    assert v1 in tree and "a.jsonl" in tree and "b.jsonl" in tree
    assert store.read_ref("corpus")["id"] == v2.id
    assert [h["version"] for h in store.read_ref("corpus")["history"]] == [1, 2]
    # `--from` the new version takes it (not the previous mix among its parents) as the mix.
    assert dag.known_from(store, v2.id)["mix"] == v2.id

    # Third refresh: nothing new, nothing written, the ref does not move.
    before = _manifests(home)
    again = _run(home, inbox)
    assert again["refresh"]["status"] == "nothing_new" and again["mix"] == {
        "id": v2.id, "built": False, "seconds": 0.0, "given": True}
    assert _manifests(home) == before and store.read_ref("corpus")["id"] == v2.id
    assert "nothing new" in refresh.describe(again["refresh"])


def test_refresh_killed_before_commit_then_retry_with_a_newer_file(version1, tmp_path):
    """The delta's dedup added its index segment, then the refresh died before the version was committed; the
    retry also sees a newer file C. B's documents must not be dropped as duplicates of themselves."""
    inbox, home = _copy(version1, tmp_path)
    store = ArtifactStore(home)
    v1 = store.read_ref("corpus")["id"]
    b_lines, _ = _b_lines(store, v1)
    _write(inbox / "b.jsonl", b_lines[:-1])  # no near-duplicate this time: nothing in B is a duplicate
    cfg = resolve_config("tiny")
    p = refresh.plan(store, cfg, refresh.expand_inputs([str(inbox)]))
    dcfg, ids = refresh.delta_config(cfg, p), {}
    for name in ("ingest", "langid", "filter", "dedup"):  # ... and then the process died
        ids[name] = dag.run_stage(name, dcfg, store, ids, False)[0].id
    assert len(list(Path(p.index_dir).glob("seg-*"))) == 2 and store.read_ref("corpus")["id"] == v1

    _write(inbox / "c.jsonl", _lines("en_c4.jsonl")[120:150])
    out = _run(home, inbox)
    dedup = store.get(out["dedup"]["id"])
    assert dedup.stats["duplicates_of_index"] == 0, dedup.stats
    assert out["refresh"]["version"] == 2 and len(list(Path(p.index_dir).glob("seg-*"))) == 2
    v2_docs = [d["id"] for d in _docs(store, out["mix"]["id"], "id")]
    b_kept = {d["id"] for d in _docs(store, ids["dedup"], "id")}
    assert b_kept <= set(v2_docs)


@pytest.mark.slow  # three refreshes with a crawl of a local HTTP server
def test_crawl_seeds_feed_the_refresh(tmp_path):
    """With crawl seeds, the crawl stage runs first and its WARC is a candidate like any file: same seeds → the
    crawl is skipped and nothing is new; an added seed → a new crawl whose already-indexed pages are dropped."""
    import gzip
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from tests.shared_data import DATA, needs

    root = needs(DATA / "html" / "readability" / "test-pages")
    pages = {f"/{case}.html": gzip.decompress((root / case / "source.html.gz").read_bytes())
             for case in ("ars-1", "medium-1", "bbc-1")}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            body = pages.get(self.path)
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    inbox, home, seeds = tmp_path / "inbox", tmp_path / "home", tmp_path / "seeds.txt"
    inbox.mkdir()
    store = ArtifactStore(home)

    def run() -> dict:
        cfg = resolve_config("tiny", {"crawl.seeds_file": str(seeds), "crawl.allow_private": "true",
                                      "crawl.max_depth": "0", "crawl.per_host_delay": "0"})
        return refresh.run_plain(cfg, store, refresh.expand_inputs([str(inbox)]))

    try:
        seeds.write_text(f"{base}/ars-1.html\n{base}/medium-1.html\n")
        first = run()
        assert first["crawl"]["built"] and first["refresh"]["version"] == 1
        assert store.get(first["ingest"]["id"]).stats["docs_in"] == 2
        kept = store.get(first["mix"]["id"]).stats["docs_out"]
        assert kept >= 1

        again = run()
        assert not again["crawl"]["built"] and again["refresh"]["status"] == "nothing_new"

        seeds.write_text(f"{base}/ars-1.html\n{base}/medium-1.html\n{base}/bbc-1.html\n")
        third = run()
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert third["crawl"]["built"] and third["crawl"]["id"] != first["crawl"]["id"]
    assert third["refresh"]["version"] == 2 and store.get(third["ingest"]["id"]).stats["docs_in"] == 3
    # The pages crawled again are the documents version 1 already holds (same URL and text, so the same id):
    # version 2 holds each of them once.
    v2 = store.get(third["mix"]["id"])
    ids = [d["id"] for d in _docs(store, v2.id, "id")]
    assert len(ids) == len(set(ids)) and {d["id"] for d in _docs(store, first["mix"]["id"], "id")} <= set(ids)
    assert store.get(third["dedup"]["id"]).stats["duplicates_of_index"] == kept  # dropped by the delta's dedup
