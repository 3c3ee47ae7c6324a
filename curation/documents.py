"""The document table shared by every curation stage: Parquet schema, ids, streaming read and write.

A document is one row with the base columns `id, text, url, title, source, lang, lang_score`; stages add
columns (`quality_score`, `dup_cluster`, …) instead of rewriting earlier ones, and dropped documents are
written with an extra `drop_reason` column under `removed/` (docs/CONTRACTS.md, "Documents").
Files use row groups of at most 5,000 rows and zstd; reading and writing stream in batches, so memory
stays bounded by one batch, not by the corpus.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from storage.remote import is_url, open_input

# Contract: row groups <= 5,000 rows. A batch is also one row group, so this bounds writer memory too.
ROW_GROUP_ROWS = 5000

BASE_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("text", pa.string()),
        ("url", pa.string()),
        ("title", pa.string()),
        ("source", pa.string()),
        ("lang", pa.string()),
        ("lang_score", pa.float64()),
    ]
)
BASE_COLUMNS: tuple[str, ...] = tuple(BASE_SCHEMA.names)

# Types of the columns that stages add, so callers can name them without repeating the type.
KNOWN_EXTRA_COLUMNS: dict[str, pa.DataType] = {
    "quality_score": pa.float64(),
    "dup_cluster": pa.string(),
    "dup_cluster_size": pa.int64(),
    "duplicate_of": pa.string(),
    "drop_reason": pa.string(),
}

# Extra columns: a name -> type mapping (type None = the standard type of a known column), or names.
ExtraColumns = Mapping[str, pa.DataType | None] | Iterable[str] | None


def doc_id(url: str | None, text: str) -> str:
    """A stable id: hash of the url and a digest of the content (32 hex chars, 128 bits).

    128 bits keeps accidental collisions negligible even for billions of documents; the same page
    fetched twice with the same text gets the same id, a changed text gets a new one.
    """
    content = hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()
    key = (url or "").encode("utf-8") + b"\0" + content
    return hashlib.blake2b(key, digest_size=16).hexdigest()


def document_schema(extra: ExtraColumns = None) -> pa.Schema:
    """The base schema plus `extra` columns (a name -> type mapping, or names of known extra columns).

    Known extra columns (`KNOWN_EXTRA_COLUMNS`) may be given without a type (None, or by name only).
    """
    schema = BASE_SCHEMA
    if extra is None:
        return schema
    items = extra.items() if isinstance(extra, Mapping) else ((n, None) for n in extra)
    for name, dtype in items:
        if name in schema.names:
            continue
        if dtype is None:
            if name not in KNOWN_EXTRA_COLUMNS:
                raise ValueError(f"unknown extra column {name!r}: pass its pyarrow type in a mapping")
            dtype = KNOWN_EXTRA_COLUMNS[name]
        schema = schema.append(pa.field(name, dtype))
    return schema


class DocumentWriter:
    """Writes document dicts to one Parquet file in batches of `ROW_GROUP_ROWS` (zstd).

    Missing columns are written as null; keys not in the schema are ignored. The file is created on
    the first batch, or on `close()` when no row was written (an empty file still carries the schema).
    """

    def __init__(self, path: str | Path, schema_extra: ExtraColumns = None) -> None:
        self.path = Path(path)
        self.schema = document_schema(schema_extra)
        self.rows = 0
        self._buffer: list[dict[str, Any]] = []
        self._writer: pq.ParquetWriter | None = None

    def write(self, row: Mapping[str, Any]) -> None:
        self._buffer.append(dict(row))
        self.rows += 1
        if len(self._buffer) >= ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(self.path, self.schema, compression="zstd")
        if self._buffer:
            columns = {name: [row.get(name) for row in self._buffer] for name in self.schema.names}
            table = pa.Table.from_pydict(columns, schema=self.schema)
            self._writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
            self._buffer = []

    def close(self) -> None:
        self._flush()
        assert self._writer is not None
        self._writer.close()

    def __enter__(self) -> DocumentWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LazyWriter:
    """A `DocumentWriter` that creates its file only when the first row arrives (used for removed/)."""

    def __init__(self, path: str | Path, schema_extra: ExtraColumns = None) -> None:
        self.path = Path(path)
        self.schema_extra = schema_extra
        self._writer: DocumentWriter | None = None

    @property
    def rows(self) -> int:
        return 0 if self._writer is None else self._writer.rows

    def write(self, row: Mapping[str, Any]) -> None:
        if self._writer is None:
            self._writer = DocumentWriter(self.path, self.schema_extra)
        self._writer.write(row)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def write_documents(
    rows: Iterable[Mapping[str, Any]], path: str | Path, schema_extra: ExtraColumns = None
) -> int:
    """Write `rows` to the Parquet file `path` (streaming, zstd, row groups <= 5,000); return the row count."""
    with DocumentWriter(path, schema_extra) as writer:
        for row in rows:
            writer.write(row)
    return writer.rows


def resolve_inputs(inputs: Iterable[str | Path]) -> list[Path]:
    """Turn stage inputs into the Parquet files to read.

    A directory stands for the `*.parquet` files directly inside it; anything inside a `removed/`
    directory is skipped (dropped documents are never a later stage's input). A missing path raises
    FileNotFoundError. An fsspec URL of one file (``s3://…/docs-00000.parquet``, an artifact store on object
    storage) is kept as it is: `read_documents` and `extra_columns` stream it in place.
    """
    files: list[Path] = []
    for item in inputs:
        if is_url(item):
            files.append(item)  # type: ignore[arg-type]  # a URL: opened with storage.remote.open_input
            continue
        path = Path(item)
        if path.parent.name == "removed" or path.name == "removed":
            continue
        if not path.exists():
            raise FileNotFoundError(f"input not found: {path} (pass existing Parquet files or directories)")
        if path.is_dir():
            files.extend(sorted(p for p in path.glob("*.parquet") if p.is_file()))
        else:
            files.append(path)
    return files


def _source(path: str | Path) -> Any:
    """What pyarrow reads a Parquet file from: the local path itself, or a streamed file object for a URL."""
    return open_input(path) if is_url(path) else contextlib.nullcontext(path)


def extra_columns(paths: Iterable[str | Path]) -> dict[str, pa.DataType]:
    """The non-base columns (name -> type) found in the given Parquet files, in first-seen order."""
    found: dict[str, pa.DataType] = {}
    for path in paths:
        with _source(path) as src:
            schema = pq.read_schema(src)
        for field in schema:
            if field.name not in BASE_COLUMNS and field.name not in found:
                found[field.name] = field.type
    return found


def read_documents(paths: Iterable[str | Path], batch_rows: int = 1000,
                   columns: list[str] | None = None) -> Iterator[dict[str, Any]]:
    """Yield every row of the given Parquet files as a dict, reading `batch_rows` rows at a time (only
    `columns` when given: the others are never decoded).

    Paths go through `resolve_inputs` (directories expand, `removed/` is skipped, missing raises).
    """
    for path in resolve_inputs(paths):
        with _source(path) as src:  # a local path, or a URL read one row group at a time
            parquet = pq.ParquetFile(src)
            for batch in parquet.iter_batches(batch_size=batch_rows, columns=columns):
                yield from batch.to_pylist()
