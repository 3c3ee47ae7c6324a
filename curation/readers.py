"""Streaming readers for raw inputs: WARC (gzip or plain, WARC 1.x and Heritrix 0.17/0.18), WET, JSONL, Parquet.

`expand_inputs(inputs)` turns paths, globs, directories and fsspec URLs (s3://, memory://, file://, …)
into the list of files; `read_records(path_or_url, stats)` yields one dict per usable record:

    {"url": str | None, "id": str | None, "title": str | None,
     "content": bytes | str,        # raw HTML bytes (kind "html") or ready text (kind "text")
     "kind": "html" | "text",       # "text" means extraction must be skipped (WET conversion, JSONL, Parquet)
     "charset": str | None,         # charset from the HTTP Content-Type header, for extraction
     "offset": int | None,          # byte offset of the WARC record, line number for JSONL
     "truncated": bool}             # the payload was shorter than its Content-Length

Everything that is not yielded is counted in `ReadStats.skipped` by reason (request, metadata, revisit,
non_html, http_status, …). Damaged input (truncated or corrupt file, malformed record) never raises: the
readable records are kept, each failure is listed in `ReadStats.damage` with its byte offset, and the
WARC reader resynchronises at the next record (plain) or gzip member (.gz) after the damage.

Dialects: warcio reads WARC/1.0, 1.1 and the pre-standard 0.17/0.18 (Heritrix 1.x) headers, per-record
gzip members or plain files, and undoes HTTP chunked transfer encoding and gzip/brotli content encoding.
A file gzipped as one member (not per record) is read too, but damage in it cannot be skipped past.
"""

from __future__ import annotations

import glob
import gzip
import json
import os
import re
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from warcio.archiveiterator import ArchiveIterator
from warcio.exceptions import ArchiveLoadFailed

HTML_TYPES = ("text/html", "application/xhtml+xml")
# A damaged file can fail at every record; past this many resyncs we give up on the rest of the file.
MAX_RESYNCS = 1000
_GZIP_MAGIC = b"\x1f\x8b\x08"
_WARC_LINE = re.compile(rb"(?:^|\n)(WARC/[01]\.\d+\r?\n)")
_CHARSET = re.compile(r"charset\s*=\s*[\"']?([\w.:-]+)", re.IGNORECASE)


@dataclass
class ReadStats:
    """What a reader saw: records read, yielded, skipped by reason, and damage (offset + error)."""

    records: int = 0
    yielded: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    damage: list[dict[str, Any]] = field(default_factory=list)

    def skip(self, reason: str) -> None:
        self.skipped[reason] += 1

    def damaged(self, offset: int | None, error: str) -> None:
        self.damage.append({"offset": offset, "error": error[:200]})

    def as_dict(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "yielded": self.yielded,
            "skipped": dict(sorted(self.skipped.items())),
            "damaged": len(self.damage),
            "damage": self.damage[:20],  # the first few are enough to locate the problem
        }


def expand_inputs(inputs: Iterable[str | Path]) -> list[str]:
    """Turn raw inputs into the files to read, in a stable order.

    Each input is a local path, a local glob (`data/*.warc.gz`, `**` allowed), a directory (its files,
    hidden ones excluded), or an fsspec URL (`s3://…`, `memory://…`, `file://…`), globs included. An input
    that matches nothing raises FileNotFoundError: a typo must not turn into an empty corpus.
    """
    files: list[str] = []
    for item in inputs:
        text = str(item)
        if "://" in text:
            files.extend(_expand_url(text))
            continue
        if glob.has_magic(text):
            found = sorted(p for p in glob.glob(text, recursive=True) if os.path.isfile(p))
        elif os.path.isdir(text):
            found = sorted(str(p) for p in Path(text).iterdir() if p.is_file() and not p.name.startswith("."))
        else:
            found = [text] if os.path.isfile(text) else []
        if not found:
            raise FileNotFoundError(f"input not found: {text} (pass WARC, WET, JSONL or Parquet files, globs or URLs)")
        files.extend(found)
    return files


def _expand_url(url: str) -> list[str]:
    fs, path = fsspec.core.url_to_fs(url)
    fs.invalidate_cache()  # s3fs keeps listings for the life of the process: a long-lived worker would miss new files
    protocol = url.split("://", 1)[0]
    if glob.has_magic(path):
        found = sorted(fs.glob(path))
    elif fs.isdir(path):
        found = sorted(p for p in fs.find(path) if not os.path.basename(p).startswith("."))
    else:
        found = [path] if fs.isfile(path) else []
    if not found:
        raise FileNotFoundError(f"input not found: {url}")
    return [p if "://" in p else f"{protocol}://{p.lstrip('/') if protocol == 'memory' else p}" for p in found]


def source_name(source: str | Path) -> str:
    """The file name of a path or URL (the `source` column of ingested documents)."""
    return os.path.basename(str(source).rstrip("/"))


def read_records(source: str | Path, stats: ReadStats | None = None) -> Iterator[dict[str, Any]]:
    """Yield the usable records of one input file (local path or fsspec URL); `stats` (if given) is
    updated as the file is read.

    The format is sniffed from the first bytes (and the name for gzipped JSONL): WARC/WET, JSONL
    (`text` field, optional `url`, `id`, `title`) or Parquet with a `text` column.
    """
    stats = stats if stats is not None else ReadStats()
    with _open(source) as fh:
        fmt = _sniff(fh, source_name(source).lower())
        if fmt == "parquet":
            records = _read_parquet(fh, stats, str(source))
        elif fmt == "jsonl":
            records = _read_jsonl(fh, stats, source_name(source).lower().endswith(".gz"))
        else:
            records = _read_warc(fh, stats)
        for record in records:
            stats.yielded += 1
            yield record


def _open(source: str | Path) -> Any:
    text = str(source)
    if "://" in text and not text.startswith("file://"):
        return fsspec.open(text, "rb").open()
    path = Path(text[len("file://") :] if text.startswith("file://") else text)
    if not path.is_file():
        raise FileNotFoundError(f"input not found: {path} (pass an existing WARC, WET, JSONL or Parquet file)")
    return path.open("rb")


def _sniff(fh: BinaryIO, name: str) -> str:
    head = fh.read(4)
    fh.seek(0)
    if head == b"PAR1" or name.endswith(".parquet"):
        return "parquet"
    if name.endswith((".jsonl", ".jsonl.gz", ".json", ".json.gz", ".ndjson", ".ndjson.gz")):
        return "jsonl"
    return "warc"


# ---------------------------------------------------------------------------------------------- WARC


def _read_warc(fh: BinaryIO, stats: ReadStats) -> Iterator[dict[str, Any]]:
    is_gzip = fh.read(3) == _GZIP_MAGIC
    start, resyncs = 0, 0
    while True:
        fh.seek(start)
        iterator = ArchiveIterator(fh)
        search_from: int | None = None
        try:
            for record in iterator:
                offset = iterator.offset  # start of this record (get_record_offset() would consume it)
                stats.records += 1
                out, truncated = _warc_record(record, offset, stats)
                if out is not None:
                    yield out
                if truncated:
                    # The file ended or a gzip member broke inside this record: warcio then reads
                    # nothing more from this pass, so look for the next record after it.
                    search_from = offset + 1
                    break
        except (ArchiveLoadFailed, zlib.error, EOFError, OSError, ValueError) as exc:
            failed_at = iterator.offset
            stats.damaged(failed_at, f"{type(exc).__name__}: {exc}".strip())
            # warcio may already have consumed the next record's first line when it fails,
            # so look a little before the failure, but always strictly after this pass's start.
            search_from = max(start + 1, failed_at - 64)
        if search_from is None:
            return
        resyncs += 1
        if resyncs > MAX_RESYNCS:
            stats.damaged(None, f"gave up after {MAX_RESYNCS} resyncs")
            return
        found = _find_next(fh, search_from, is_gzip)
        if found is None:
            return
        start = found


def _find_next(fh: BinaryIO, position: int, is_gzip: bool, chunk: int = 1 << 20) -> int | None:
    """Offset of the next gzip member (gzip) or `WARC/x.y` line (plain) at or after `position`."""
    overlap = 16
    while True:
        fh.seek(position)
        data = fh.read(chunk)
        if not data:
            return None
        if is_gzip:
            hit = data.find(_GZIP_MAGIC)
            if hit >= 0:
                return position + hit
        else:
            match = _WARC_LINE.search(data)
            if match:
                return position + match.start(1)
        if len(data) < chunk:
            return None
        position += len(data) - overlap


def _warc_record(record: Any, offset: int, stats: ReadStats) -> tuple[dict[str, Any] | None, bool]:
    """Turn one warcio record into a reader dict (or None, counting why), and whether it was truncated."""
    rec_type = record.rec_type
    url = record.rec_headers.get_header("WARC-Target-URI")
    out: dict[str, Any] | None = None
    try:
        if rec_type == "conversion":  # WET: the text is already extracted
            payload = record.content_stream().read()
            out = _text_record(payload.decode("utf-8", errors="replace"), url, None, None, offset)
        elif rec_type != "response":
            stats.skip(rec_type or "unknown")
        elif record.http_headers is None:  # e.g. Heritrix `dns:` responses
            stats.skip("no_http_headers")
        elif not (record.http_headers.get_statuscode() or "").startswith("2"):
            stats.skip("http_status")  # redirects and error pages carry no main text
        else:
            out = _html_record(record, url, offset, stats)
        truncated = _drain(record)
    except (zlib.error, EOFError, OSError, ValueError) as exc:
        stats.damaged(offset, f"unreadable record: {type(exc).__name__}: {exc}")
        return None, True
    if truncated:
        stats.damaged(offset, f"truncated {rec_type} record")
        if out is not None:
            out["truncated"] = True
    return out, truncated


def _html_record(record: Any, url: str | None, offset: int, stats: ReadStats) -> dict[str, Any] | None:
    content_type = record.http_headers.get_header("Content-Type") or ""
    mime = content_type.split(";")[0].strip().lower()
    if mime and mime not in HTML_TYPES:
        stats.skip("non_html")
        return None
    payload = record.content_stream().read()
    if not mime and b"<html" not in payload[:2048].lower():  # no Content-Type: sniff like a browser
        stats.skip("non_html")
        return None
    if not payload.strip():
        stats.skip("empty_payload")
        return None
    match = _CHARSET.search(content_type)
    return {
        "url": url,
        "id": None,
        "title": None,
        "content": payload,
        "kind": "html",
        "charset": match.group(1) if match else None,
        "offset": offset,
        "truncated": False,
    }


def _drain(record: Any) -> bool:
    """Read what is left of the record block; True when the file ended before Content-Length."""
    raw = record.raw_stream
    while raw.read(1 << 16):
        pass
    return getattr(raw, "limit", 0) > 0


def _text_record(
    text: str, url: str | None, doc_id: str | None, title: str | None, offset: int | None, truncated: bool = False
) -> dict[str, Any]:
    return {
        "url": url,
        "id": doc_id,
        "title": title,
        "content": text,
        "kind": "text",
        "charset": None,
        "offset": offset,
        "truncated": truncated,
    }


# ------------------------------------------------------------------------------------- JSONL, Parquet


def _read_jsonl(fh: BinaryIO, stats: ReadStats, gzipped: bool) -> Iterator[dict[str, Any]]:
    raw = gzip.GzipFile(fileobj=fh) if gzipped else fh
    line_no = 0
    try:
        for line_no, data in enumerate(raw, start=1):  # bytes lines: each is decoded on its own
            try:
                line = data.decode("utf-8")
            except UnicodeDecodeError as exc:  # kept, with U+FFFD for the bad bytes, and counted
                line = data.decode("utf-8", errors="replace")
                stats.damaged(line_no, f"line {line_no}: not UTF-8 at byte {exc.start} of the line "
                                       f"({data[exc.start:exc.start + 4]!r}); undecodable bytes replaced by U+FFFD")
            if not line.strip():
                continue
            stats.records += 1
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                stats.skip("bad_json")
                stats.damaged(line_no, f"line {line_no}: {exc}")
                continue
            record = _row_record(obj, line_no, stats)
            if record is not None:
                yield record
    except (EOFError, OSError, zlib.error) as exc:  # a truncated or corrupt .jsonl.gz: keep what was read
        stats.damaged(line_no, f"after line {line_no}: {type(exc).__name__}: {exc}")


def _read_parquet(fh: BinaryIO, stats: ReadStats, name: str) -> Iterator[dict[str, Any]]:
    try:
        parquet = pq.ParquetFile(fh)
    except (pa.ArrowException, OSError) as exc:
        stats.damaged(0, f"unreadable Parquet file: {type(exc).__name__}: {exc}")
        return
    if "text" not in parquet.schema_arrow.names:
        raise ValueError(f"{name}: Parquet input needs a 'text' column (found {parquet.schema_arrow.names})")
    wanted = [c for c in ("text", "url", "id", "title") if c in parquet.schema_arrow.names]
    row_no = 0
    try:
        for batch in parquet.iter_batches(batch_size=1000, columns=wanted):
            for obj in batch.to_pylist():
                stats.records += 1
                record = _row_record(obj, row_no, stats)
                row_no += 1
                if record is not None:
                    yield record
    except (pa.ArrowException, OSError) as exc:  # a corrupt row group: keep the rows read before it
        stats.damaged(row_no, f"at row {row_no}: {type(exc).__name__}: {exc}")


def _row_record(obj: Any, position: int, stats: ReadStats) -> dict[str, Any] | None:
    if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
        stats.skip("no_text")
        return None
    url, rid, title = obj.get("url"), obj.get("id"), obj.get("title")
    return _text_record(
        obj["text"],
        url if isinstance(url, str) else None,
        str(rid) if rid is not None else None,
        title if isinstance(title, str) else None,
        position,
    )
