"""Damaged and undecodable raw inputs, said where a user looks: one warning line at the end of `lmpipe run`, a
mark on the raw input in `lmpipe lineage`, and a clear error when nothing readable is left.

The facts come from the ingest manifest (``stats.read.files``: per input file the records read and yielded, and
each problem with its byte offset, or line/row number, see ``curation.readers.ReadStats``). Nothing here reads an
input file again.

    from flows.damage import damaged_inputs, warning_line
    line = warning_line(damaged_inputs(store, mix_id))   # None when every input was read cleanly
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from storage.store import ArtifactStore

# Files named in full in the one-line warning; the rest are counted.
SHOWN = 3


@dataclass(frozen=True)
class Damaged:
    """One raw input file with problems: how many, where the first was, and what it was."""

    file: str
    problems: int
    records: int    # records the reader found in the file (documents or not)
    yielded: int    # records it handed on as documents
    offset: int | None
    error: str
    ingest_id: str

    def brief(self) -> str:
        where = "" if self.offset is None else f" at {_unit(self.file)} {self.offset}"
        error = "".join(c if c.isprintable() else "?" for c in self.error[:80])  # readers quote raw bytes
        return f"{self.file} ({self.problems} problem(s), {self.yielded} document(s) read; first{where}: {error})"


def _unit(name: str) -> str:
    """What a reader's offset counts in this file: bytes (WARC/WET), lines (JSONL) or rows (Parquet)."""
    lower = name.lower()
    if ".warc" in lower or ".wet" in lower or ".arc" in lower:
        return "byte"
    if ".jsonl" in lower or lower.endswith((".json", ".json.gz")):
        return "line"
    return "row" if ".parquet" in lower else "offset"


def from_read_stats(read: dict[str, Any], ingest_id: str = "") -> list[Damaged]:
    """The damaged files of one ingest's ``stats.read``."""
    out = []
    for name, s in sorted((read.get("files") or {}).items()):
        if s.get("damaged"):
            first = (s.get("damage") or [{}])[0]
            out.append(Damaged(name, int(s["damaged"]), int(s.get("records", 0)), int(s.get("yielded", 0)),
                               first.get("offset"), str(first.get("error", "?")), ingest_id))
    return out


def damaged_inputs(store: ArtifactStore, artifact_id: str) -> list[Damaged]:
    """Every damaged raw input behind ``artifact_id`` (its ingest ancestors, or itself)."""
    out: list[Damaged] = []
    for m in store.ancestors(artifact_id):
        if m.kind == "ingest":
            out += from_read_stats(m.stats.get("read") or {}, m.id)
    return out


def warning_line(found: list[Damaged]) -> str | None:
    """``lmpipe: warning: …`` naming the damaged inputs (the first few in full), or None."""
    if not found:
        return None
    shown = "; ".join(d.brief() for d in found[:SHOWN])
    more = f"; and {len(found) - SHOWN} more" if len(found) > SHOWN else ""
    ids = ", ".join(sorted({d.ingest_id for d in found if d.ingest_id}))
    where = f" (all of them: `lmpipe show {ids}`, stats.read.files)" if ids else ""
    return f"lmpipe: warning: {len(found)} damaged input file(s): {shown}{more}{where}"


def no_documents_message(stats: dict[str, Any], inputs: int) -> str:
    """Why an ingest ended with no documents, for the error that stops the flow there (not three stages later)."""
    read = stats.get("read") or {}
    found = from_read_stats(read)
    parts = [f"ingest: no documents in {inputs} input file(s)"]
    if found:
        parts.append(f"{len(found)} damaged: " + "; ".join(d.brief() for d in found[:SHOWN]))
    skipped = read.get("skipped") or {}
    if skipped:
        parts.append("records skipped: " + ", ".join(f"{k} {v}" for k, v in sorted(skipped.items())))
    dropped = stats.get("dropped") or {}
    if dropped:
        parts.append("documents dropped: " + ", ".join(f"{k} {v}" for k, v in sorted(dropped.items())))
    parts.append("check --input: WARC/WET (.warc, .warc.gz, .wet.gz), JSONL with a 'text' field, or Parquet")
    return "; ".join(parts)
