"""Encode document Parquet files into the flat token shards that the model package trains on.

Layout (CONTRACTS.md, "Token shards directory"), per split:

* `{split}-00000.bin`, `-00001`, …: flat little-endian uint16 (vocab <= 65,536) or uint32 token ids (or the
  dtype that `TokensConfig.dtype` names; a vocabulary it cannot hold is a ValueError); every
  document is `[bos_id] + encode(text)`, documents back to back, none straddling two files;
* `{split}-00000.idx.npy`: int64 start offset of every document in the matching `.bin`;
* `meta.json`: dtype, vocab_size, bos/eos ids and, per split, files, tokens (BOS included), docs and bytes
  (UTF-8 bytes of the encoded texts, the denominator of bits-per-byte).

Work is split into (file, row group) tasks, encoded by a pool of worker processes and written in task order,
so the output does not depend on the number of workers. The pool uses the 'spawn' start method: after a
Prefect flow has run in a process, forked children exit with code 1 (DESIGN.md, pitfalls). Small inputs are
encoded in-process, where starting workers would cost more than it saves. Memory is bounded by one row
group's tokens per worker: Parquet is read in record batches and every task's tokens go straight to disk.
Null or empty texts are counted drops.
"""

from __future__ import annotations

import json
import multiprocessing
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from tokenizer._parquet import iter_batches, open_documents
from tokenizer.config import TokensConfig
from tokenizer.tok import load

META_FILE = "meta.json"
_MAX_UINT16_VOCAB = 65536
_SPLIT_NAME = re.compile(r"[A-Za-z0-9_]+")

Task = tuple[str, int]  # (Parquet file, row group)


@dataclass
class _Encoded:
    """Tokens of one task's kept documents, back to back, and what was counted along the way."""

    tokens: np.ndarray
    lengths: np.ndarray  # int64 token count of each document, BOS included
    bytes: int
    dropped_null: int
    dropped_empty: int


def encode_corpus(
    split_files: dict[str, list[str]], tokenizer_dir: Path, out_dir: Path, cfg: TokensConfig
) -> dict:
    """Encode `{split: parquet files}` with the tokenizer in `tokenizer_dir` into shards in `out_dir`."""
    started = time.perf_counter()
    tok = load(tokenizer_dir)
    dtype = _shard_dtype(tok.vocab_size, cfg.dtype)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    plan: dict[str, list[Task]] = {}
    total_docs = 0
    for split, files in split_files.items():
        if not _SPLIT_NAME.fullmatch(split):
            raise ValueError(f"split name {split!r} must be letters, digits or '_'")
        plan[split] = []
        for path in files:
            pf = open_documents(path)
            total_docs += pf.metadata.num_rows
            plan[split] += [(str(path), group) for group in range(pf.num_row_groups)]
    n_tasks = sum(len(tasks) for tasks in plan.values())
    workers = max(1, min(cfg.num_workers, n_tasks)) if total_docs >= cfg.min_docs_parallel else 1

    meta_splits: dict[str, dict] = {}
    stats_splits: dict[str, dict] = {}
    with _task_runner(workers, Path(tokenizer_dir), dtype, cfg.batch_rows) as run:
        for split, tasks in plan.items():
            writer = _ShardWriter(out_dir, split, dtype, cfg.shard_tokens)
            nbytes = dropped_null = dropped_empty = 0
            for encoded in run(tasks):
                writer.add(encoded.tokens, encoded.lengths)
                nbytes += encoded.bytes
                dropped_null += encoded.dropped_null
                dropped_empty += encoded.dropped_empty
            files = writer.close()
            if writer.docs == 0:
                raise ValueError(f"split {split!r} has no non-empty documents; check the mix output")
            meta_splits[split] = {"files": files, "tokens": writer.tokens, "docs": writer.docs, "bytes": nbytes}
            stats_splits[split] = {
                **meta_splits[split],
                "dropped": {"null_text": dropped_null, "empty_text": dropped_empty},
            }

    meta = {
        "dtype": dtype.name,
        "vocab_size": tok.vocab_size,
        "bos_id": tok.bos_id,
        "eos_id": tok.eos_id,
        "splits": meta_splits,
    }
    (out_dir / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    seconds = time.perf_counter() - started
    total_tokens = sum(s["tokens"] for s in meta_splits.values())
    return {
        "dtype": dtype.name,
        "vocab_size": tok.vocab_size,
        "workers": workers,
        "seconds": round(seconds, 3),
        "tokens_per_second": round(total_tokens / seconds) if seconds > 0 else None,
        "splits": stats_splits,
    }


def _shard_dtype(vocab_size: int, requested: str) -> np.dtype:
    """uint16 while every id fits in it (vocab <= 65,536), else uint32; a requested dtype too small fails."""
    if requested == "auto":
        requested = "uint16" if vocab_size <= _MAX_UINT16_VOCAB else "uint32"
    limit = _MAX_UINT16_VOCAB if requested == "uint16" else 2**32
    if vocab_size > limit:
        raise ValueError(
            f"vocab_size {vocab_size} does not fit {requested} shards (at most {limit} ids); "
            "set tokens.dtype=auto or uint32, or train a smaller vocabulary"
        )
    return np.dtype("<u2") if requested == "uint16" else np.dtype("<u4")


class _Encoder:
    """Encodes one (file, row group) task; one lives in each worker process (or in-process)."""

    def __init__(self, tokenizer_dir: str, dtype: str, batch_rows: int) -> None:
        self.tok = load(tokenizer_dir)
        self.dtype = np.dtype(dtype)
        self.batch_rows = batch_rows

    def __call__(self, task: Task) -> _Encoded:
        path, group = task
        pf = open_documents(path)
        parts: list[np.ndarray] = []
        lengths: list[int] = []
        nbytes = dropped_null = dropped_empty = 0
        for batch in iter_batches(pf, ["text"], self.batch_rows, row_groups=[group]):
            texts = []
            for text in batch["text"]:
                if text is None:
                    dropped_null += 1
                elif not text:
                    dropped_empty += 1
                else:
                    texts.append(text)
            for text, ids in zip(texts, self.tok.encode_batch(texts)):
                doc = np.empty(len(ids) + 1, dtype=self.dtype)
                doc[0] = self.tok.bos_id
                doc[1:] = ids
                parts.append(doc)
                lengths.append(len(doc))
                nbytes += len(text.encode("utf-8"))
        tokens = np.concatenate(parts) if parts else np.empty(0, dtype=self.dtype)
        return _Encoded(tokens, np.asarray(lengths, dtype=np.int64), nbytes, dropped_null, dropped_empty)


_WORKER: _Encoder | None = None


def _init_worker(tokenizer_dir: str, dtype: str, batch_rows: int) -> None:
    global _WORKER
    _WORKER = _Encoder(tokenizer_dir, dtype, batch_rows)


def _run_task(task: Task) -> _Encoded:
    assert _WORKER is not None, "worker not initialised"
    return _WORKER(task)


@contextmanager
def _task_runner(
    workers: int, tokenizer_dir: Path, dtype: np.dtype, batch_rows: int
) -> Iterator[Callable[[list[Task]], Iterator[_Encoded]]]:
    """Yield `run(tasks) -> results in task order`, in-process or on a spawn-started pool."""
    args = (str(tokenizer_dir), dtype.str, batch_rows)
    if workers == 1:
        encoder = _Encoder(*args)
        yield lambda tasks: map(encoder, tasks)
        return
    pool = multiprocessing.get_context("spawn").Pool(workers, initializer=_init_worker, initargs=args)
    try:
        yield lambda tasks: pool.imap(_run_task, tasks)
    except BaseException:
        pool.terminate()  # do not wait for the tasks still queued
        raise
    else:
        pool.close()
    finally:
        pool.join()


class _ShardWriter:
    """Appends documents to `{split}-NNNNN.bin` files, rolling over at `shard_tokens`, and writes the idx files."""

    def __init__(self, out_dir: Path, split: str, dtype: np.dtype, shard_tokens: int) -> None:
        self.out_dir = out_dir
        self.split = split
        self.dtype = dtype
        self.shard_tokens = shard_tokens
        self.files: list[str] = []
        self.tokens = 0
        self.docs = 0
        self._fh: BinaryIO | None = None
        self._offsets: list[np.ndarray] = []
        self._in_shard = 0  # tokens in the open file

    def add(self, tokens: np.ndarray, lengths: np.ndarray) -> None:
        starts = np.zeros(len(lengths), dtype=np.int64)
        np.cumsum(lengths[:-1], out=starts[1:])
        i = 0
        while i < len(lengths):
            if self._fh is None:
                self._open_shard()
            # Tokens written if documents i..j were added, for every j; take as many as fit.
            totals = starts[i:] + lengths[i:] - starts[i]
            fit = int(np.searchsorted(totals, self.shard_tokens - self._in_shard, side="right"))
            if fit == 0:
                if self._in_shard:
                    self._close_shard()
                    continue
                fit = 1  # a document longer than a shard gets a file of its own
            lo, hi = starts[i], starts[i] + totals[fit - 1]
            self._offsets.append(self._in_shard + starts[i : i + fit] - starts[i])
            self._fh.write(tokens[lo:hi].astype(self.dtype, copy=False).tobytes())
            self._in_shard += int(hi - lo)
            self.tokens += int(hi - lo)
            self.docs += fit
            i += fit

    def close(self) -> list[str]:
        if self._fh is not None:
            self._close_shard()
        return self.files

    def _open_shard(self) -> None:
        name = f"{self.split}-{len(self.files):05d}.bin"
        self.files.append(name)
        self._fh = open(self.out_dir / name, "wb")
        self._offsets = []
        self._in_shard = 0

    def _close_shard(self) -> None:
        self._fh.close()
        self._fh = None
        offsets = np.concatenate(self._offsets) if self._offsets else np.empty(0, dtype=np.int64)
        idx_name = self.files[-1].removesuffix(".bin") + ".idx.npy"
        np.save(self.out_dir / idx_name, offsets.astype(np.int64, copy=False))
