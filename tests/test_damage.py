"""Damaged inputs are said where a user looks: a corpus run whose inputs hold no readable document stops at
ingest with an error naming the damage; one that loses only some ends with a warning line naming the files; the
lineage marks them; a JSONL line that is not UTF-8 is kept (bad bytes replaced) and counted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from curation.readers import ReadStats, read_records
from flows.damage import damaged_inputs, from_read_stats, no_documents_message, warning_line
from storage.lineage import lineage_lines
from storage.store import ArtifactStore

REPO = Path(__file__).resolve().parents[1]


def _run(home: Path, *inputs: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "flows.cli", "--home", str(home), "run", "corpus", "--preset", "tiny", "--no-prefect",
           "--no-generate", "--workers", "1", "--set", "quality_model.positives=[]",
           *[a for p in inputs for a in ("--input", str(p))]]
    return subprocess.run(cmd, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
                          text=True, timeout=600)


def _garbage(path: Path) -> Path:
    path.write_bytes(bytes((i * 7919 + 13) % 256 for i in range(50_000)))  # no WARC header anywhere
    return path


def test_inputs_with_no_readable_document_stop_at_ingest_naming_the_damage(tmp_path):
    bad_json = tmp_path / "broken.jsonl"
    bad_json.write_text('{"text": "never closed\n')
    p = _run(tmp_path / "home", _garbage(tmp_path / "random.warc.gz"), bad_json)
    assert p.returncode != 0
    err = p.stderr.strip().splitlines()[-1]
    assert err.startswith("lmpipe: error: ingest: no documents in 2 input file(s); 2 damaged:"), err
    assert "random.warc.gz (1 problem(s), 0 document(s) read; first at byte 0" in err
    assert "broken.jsonl (1 problem(s), 0 document(s) read; first at line 1" in err
    assert "quality_model" not in p.stderr  # not the stage that used to fail, three stages later
    assert ArtifactStore(tmp_path / "home").list("ingest") == []


def test_partly_damaged_inputs_end_the_run_with_one_warning_line_and_a_lineage_mark(tmp_path):
    good = tmp_path / "good.jsonl"
    texts = [json.loads(line)["text"] for line in (REPO / "demo" / "text" / "en_c4.jsonl").open()][:40]
    with good.open("wb") as f:
        for i, t in enumerate(texts):
            f.write(json.dumps({"id": str(i), "text": t}, ensure_ascii=False).encode() + b"\n")
        f.write(b'{"id": "latin1", "text": "' + "Caf\u00e9 culture. ".encode("latin-1") * 40 + b'"}\n')
    p = _run(tmp_path / "home", good, _garbage(tmp_path / "random.warc.gz"))
    assert p.returncode == 0, p.stderr[-2000:]
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("lmpipe: warning: 2 damaged input file(s): good.jsonl (1 problem(s), 41 document(s) "
                           "read; first at line 41: line 41: not UTF-8"), last
    assert "random.warc.gz (1 problem(s), 0 document(s) read" in last
    store = ArtifactStore(tmp_path / "home")
    (mix,) = store.list("mix")
    marked = [ln for ln in lineage_lines(store, mix.id) if "DAMAGED" in ln]
    assert len(marked) == 2 and any("random.warc.gz" in ln for ln in marked)
    assert {d.file for d in damaged_inputs(store, mix.id)} == {"good.jsonl", "random.warc.gz"}


def test_a_jsonl_line_that_is_not_utf8_is_kept_and_counted(tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_bytes('{"text": "café ok"}\n'.encode("latin-1") + '{"text": "fine ünï"}\n'.encode())
    stats = ReadStats()
    texts = [r["content"] for r in read_records(path, stats)]
    assert texts == ["caf\ufffd ok", "fine ünï"]
    assert stats.as_dict()["damaged"] == 1 and "not UTF-8" in stats.damage[0]["error"]


def test_clean_reads_give_no_warning_and_messages_name_what_was_skipped():
    assert warning_line([]) is None
    assert from_read_stats({"files": {"a.warc.gz": {"damaged": 0, "records": 3, "yielded": 3}}}) == []
    msg = no_documents_message({"read": {"skipped": {"request": 5}, "files": {}}, "dropped": {"too_short": 2}}, 1)
    assert msg.startswith("ingest: no documents in 1 input file(s); records skipped: request 5; "
                          "documents dropped: too_short 2; check --input")


def test_a_failed_training_subprocess_ends_in_one_line_with_its_log(tmp_path, capfd):
    from flows.config import UserError
    from flows.dag import _run_subprocess

    out = tmp_path / "pretrain" / ".tmp-pretrain-0123456789ab"
    with pytest.raises(UserError) as e:
        _run_subprocess("tests._failing_child", ["--out", str(out)])
    log = tmp_path / "pretrain" / ".log-pretrain-0123456789ab.txt"
    assert str(e.value) == (f"tests._failing_child (1 process(es)) exited with code 1: ValueError: tokens shard 00003 "
                            f"is from another tokenizer; full log: {log}")
    assert "Traceback (most recent call last)" in log.read_text()  # the traceback is in the log ...
    err = capfd.readouterr().err
    assert "step 1 loss 9.0" in err and "Traceback" not in err  # ... progress on the terminal, no traceback


def test_label_reference_and_sft_files_that_are_not_utf8_are_named(tmp_path):
    from curation.quality import read_labels, read_texts
    from model.chat import read_records

    bad = '{"text": "caf\u00e9", "label": 1}\n'.encode("latin-1")
    for name, read, what in (("labels.jsonl", read_labels, "quality_model.labels"),
                             ("ref.jsonl", read_texts, "quality reference file"),
                             ("sft.json", read_records, "SFT data file")):
        path = tmp_path / name
        path.write_bytes(bad)
        with pytest.raises(ValueError, match=f"{what} {path} is not UTF-8 \\(byte 13"):
            read(path)
