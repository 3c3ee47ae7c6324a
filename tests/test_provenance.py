"""Artifacts built by other code are found (`lmpipe status`) and rebuilt (`--refresh stale`); a damaged artifact
is never reused silently (sizes on reuse, `lmpipe verify` for checksums)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flows.provenance import changes, stage_code
from storage.store import ArtifactStore

REPO = Path(__file__).resolve().parents[1]


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flows.cli", "--home", str(home), *args], cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=600)


RUN = ("run", "corpus", "--preset", "tiny", "--no-prefect", "--no-generate", "--workers", "1",
       "--set", "quality_model.positives=[]")


def test_stage_code_names_the_stage_modules_and_libraries_and_says_what_changed():
    code = stage_code("ingest")
    assert {"curation.extract", "curation.readers"} <= set(code["modules"])
    assert "trafilatura" in code["libraries"] and "torch" not in code["libraries"]
    assert "fasttext" in "".join(stage_code("langid")["libraries"])  # installed under another name
    assert changes(code, "ingest") == []
    older = {**code, "digest": "0" * 16, "modules": {**code["modules"], "curation.extract": "a" * 12},
             "libraries": {**code["libraries"], "trafilatura": "1.0"}}
    assert changes(older, "ingest") == ["curation.extract changed",
                                        f"trafilatura 1.0 -> {code['libraries']['trafilatura']}"]
    assert changes({}, "ingest") == ["built before code digests were recorded"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("provenance")
    p = _cli(home, *RUN)
    assert p.returncode == 0, p.stderr[-2000:]
    return home


def _age(store: ArtifactStore, kind: str) -> str:
    """Make the artifact of ``kind`` look built by older code (its manifest's recorded module digest)."""
    (m,) = store.list(kind)
    path = Path(m.path) / "manifest.json"
    data = json.loads(path.read_text())
    data["code"]["modules"] = {k: "0" * 12 for k in data["code"]["modules"]}
    data["code"]["digest"] = "0" * 16
    path.write_text(json.dumps(data))
    return m.id


def test_status_lists_artifacts_of_other_code_and_refresh_stale_rebuilds_them_only(corpus):
    store = ArtifactStore(corpus)
    before = {k: store.list(k)[0].id for k in ("ingest", "langid", "filter", "dedup", "quality", "mix")}
    dedup = _age(store, "dedup")
    status = _cli(corpus, "status")
    assert status.returncode == 0
    stale = [ln for ln in status.stdout.splitlines() if "stale:" in ln]
    assert len(stale) == 1 and stale[0].startswith(dedup) and "curation.dedup changed" in stale[0]
    p = _cli(corpus, *RUN, "--refresh", "stale")
    assert p.returncode == 0, p.stderr[-2000:]
    (line,) = [ln for ln in p.stdout.splitlines() if ln.startswith("stale: ")]
    assert line.startswith("stale: dedup (") and "curation.dedup changed" in line
    built = {ln.split()[0] for ln in p.stdout.splitlines() if " built " in ln}
    assert built == {"dedup", "quality", "mix"}  # what follows dedup, nothing upstream
    assert {k: store.list(k)[0].id for k in before} == before  # same ids: same config, rebuilt in place
    assert "every artifact was built by the code installed now" in _cli(corpus, "status").stdout


def test_a_damaged_artifact_is_never_reused_and_verify_finds_a_changed_byte(corpus):
    store = ArtifactStore(corpus)
    (m,) = store.list("filter")
    shard = Path(m.path) / next(f["path"] for f in m.files if f["path"].startswith("docs-"))
    data = shard.read_bytes()
    shard.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # same size, one bit changed
    v = _cli(corpus, "verify", m.id)
    assert v.returncode == 1 and "has another SHA-256 than the manifest's" in v.stdout
    shard.write_bytes(data[: len(data) // 2])  # truncated
    p = _cli(corpus, *RUN)
    assert p.returncode == 2
    assert f"artifact {m.id} is damaged: {shard.name} is {len(data) // 2} bytes, the manifest says {len(data)}" \
        in p.stderr and "--refresh filter" in p.stderr
    assert _cli(corpus, *RUN, "--refresh", "filter").returncode == 0
    assert _cli(corpus, "verify", m.id).returncode == 0


def test_comments_docstrings_and_line_wrapping_do_not_change_a_module_digest(tmp_path):
    from flows.provenance import _code_digest

    def digest(name: str, text: str) -> str:
        (tmp_path / name).write_text(text)
        return _code_digest(tmp_path / name)

    base = digest("a.py", '"""Doc."""\nimport os  # why\n\n\ndef f(x,\n      y):\n    """Doc of f."""\n'
                          '    return (x +\n            y)\n')
    same = digest("b.py", '"""Another doc."""\nimport os\n\n# a comment\ndef f(x, y):\n    """Other."""\n'
                          '    return (x + y)\n')
    other = digest("c.py", '"""Doc."""\nimport os\n\n\ndef f(x, y):\n    return (x - y)\n')
    assert base == same and base != other
