"""Streaming reads of the `text` (and `lang`) columns of document Parquet files, shared by training and encoding.

Only whole record batches are held in memory, never a whole file.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq


def open_documents(path: str | Path) -> pq.ParquetFile:
    """Open a documents file, failing with a one-line message when it cannot be tokenized."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"input {path} does not exist; pass the files of an existing mix artifact")
    pf = pq.ParquetFile(path)
    if "text" not in pf.schema_arrow.names:
        raise ValueError(f"{path} has no 'text' column; pass document Parquet files (the mix stage's output)")
    return pf


def iter_batches(
    pf: pq.ParquetFile, columns: list[str], batch_rows: int, row_groups: list[int] | None = None
) -> Iterator[dict[str, list]]:
    """Yield `{column: python values}` per record batch; columns absent from the file are skipped."""
    present = [c for c in columns if c in pf.schema_arrow.names]
    for batch in pf.iter_batches(batch_size=batch_rows, row_groups=row_groups, columns=present):
        yield {name: batch.column(i).to_pylist() for i, name in enumerate(present)}
