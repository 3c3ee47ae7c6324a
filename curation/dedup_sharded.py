"""Dedup decisions with bounded memory per process: sorted runs per shard, merged per key range in parallel.

The dedup stage (`flows.sharded`, `curation.stages.run_dedup`) signs every shard (`curation.dedup.
write_shard_signatures`), which also writes three *sorted runs* per shard (`write_runs`):

* ``<prefix>.ids.run``   (id hash, row, exact key), sorted by the 128-bit blake2b of the id;
* ``<prefix>.exact.run`` (exact key, row, text length), sorted by the exact key;
* ``<prefix>.bands.run`` (band << 32 | band key, row) of every document with shingles, sorted by that key.

The decisions then come from four steps, each rank reading only its key range of every shard's run
(`searchsorted` on memory-mapped columns), so a rank holds ~1/ranks of the rows:

1. `ids_rank`: repeated ids. A later occurrence of an id with the same exact key is an exact duplicate,
   with another key a ``duplicate_id`` (the first occurrence, in shard order, wins).
2. `exact_rank`: exact groups and their representative (longest text, then smallest id).
3. `bands_rank`: LSH candidate pairs among the representatives (each bucket member paired with the bucket's
   first member and its predecessor, as `curation.dedup._candidate_pairs`), verified by the exact Jaccard of
   the shingle sets (read from the shard's ``.u32`` file), and matches against the persistent index.
4. `finish` (one process): connected components over the verified pairs only, the kept document of each,
   one decision file per shard (the format `curation.stages.dedup_write` reads), and the index segment.

Memory: steps 1-3 hold their key range (16-40 bytes a row); step 4 holds what concerns duplicates (pairs,
clusters, the ids of their members) plus one shard's decisions at a time. Ranks are sized by
`PART_ROWS`. Temp disk: ~16 x (bands + 3) bytes per document for the runs, beside the shingle files.

Results equal the one-process `curation.stages.dedup_decide` (tests/test_dedup_scale.py) with one caveat:
repeated ids are found by a 128-bit hash of the id (a collision, ~N^2 / 2^129, would merge two ids).

A run file is its columns back to back, a JSON footer (row count, column types, xxh64 of the columns), the
footer's length and a magic. `Run` refuses a file whose size does not match its footer (a write killed
half-way: the stage signs that shard again, see `check_runs`), and `Run.verify` checks the checksum.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xxhash

from curation import dedup

MAGIC = b"LMPRUN01"
RUN_KINDS = ("ids", "exact", "bands")
PART_ROWS = 4_000_000  # rows of one run kind a rank reads at most (~160 MB of columns for the exact step)
# Ranks per step in the DAG: from the data (rows / PART_ROWS), at least this many so that workers share a
# step, never from the worker count, so that a run resumed with other --workers finds its ranks' outputs.
MIN_RANKS = 8
_TOP = 1 << 64
# Decision codes, as curation.stages writes them.
KEEP, EXACT, NEAR, DUP_ID = 0, 1, 2, 3


class CorruptRun(ValueError):
    """A run file that is truncated, has no footer, or fails its checksum."""


def run_path(prefix: Path, kind: str) -> Path:
    return prefix.parent / f"{prefix.name}.{kind}.run"


def write_run(path: Path, columns: dict[str, np.ndarray]) -> None:
    """Write columns (same length, already sorted by the first one) as one run file, atomically."""
    tmp = path.with_name(path.name + ".part")
    h = xxhash.xxh64()
    layout, n = [], None
    with open(tmp, "wb") as f:
        for name, col in columns.items():
            data = np.ascontiguousarray(col).tobytes()
            f.write(data)
            h.update(data)
            layout.append([name, col.dtype.str])
            n = len(col)
        footer = json.dumps({"n": n or 0, "columns": layout, "xxh64": h.hexdigest()}).encode()
        f.write(footer + struct.pack("<Q", len(footer)) + MAGIC)
    os.replace(tmp, path)


class Run:
    """A run file opened read-only: `col(name)` is a memory-mapped column; `rows(lo, hi)` a key range."""

    def __init__(self, path: Path) -> None:
        self.path = path
        size = path.stat().st_size
        with open(path, "rb") as f:
            if size < 16:
                raise CorruptRun(f"{path}: {size} bytes, no footer (truncated)")
            f.seek(size - 16)
            tail = f.read(16)
            if tail[8:] != MAGIC:
                raise CorruptRun(f"{path}: no end marker (truncated or not a run file)")
            (flen,) = struct.unpack("<Q", tail[:8])
            if flen > size - 16:
                raise CorruptRun(f"{path}: footer length {flen} exceeds the file")
            f.seek(size - 16 - flen)
            try:
                self.footer = json.loads(f.read(flen))
            except ValueError:
                raise CorruptRun(f"{path}: unreadable footer") from None
        self.n = int(self.footer["n"])
        self._offsets, offset = {}, 0
        for name, dtype in self.footer["columns"]:
            self._offsets[name] = (offset, np.dtype(dtype))
            offset += self.n * np.dtype(dtype).itemsize
        self.body = offset
        if offset + flen + 16 != size:
            raise CorruptRun(f"{path}: {size} bytes, its footer describes {offset + flen + 16}")

    def col(self, name: str) -> np.ndarray:
        offset, dtype = self._offsets[name]
        if self.n == 0:
            return np.zeros(0, dtype)
        return np.memmap(self.path, dtype=dtype, mode="r", offset=offset, shape=(self.n,))

    def bounds(self, lo: int, hi: int) -> tuple[int, int]:
        """Rows whose key (first column) is in [lo, hi)."""
        key = self.col(self.footer["columns"][0][0])
        a = int(np.searchsorted(key, np.uint64(lo), side="left"))
        b = self.n if hi >= _TOP else int(np.searchsorted(key, np.uint64(hi), side="left"))
        return a, b

    def rows(self, lo: int, hi: int) -> dict[str, np.ndarray]:
        a, b = self.bounds(lo, hi)
        return {name: np.asarray(self.col(name)[a:b]) for name, _ in self.footer["columns"]}

    def verify(self) -> None:
        """Raise CorruptRun unless the columns match the footer's checksum (reads the file once)."""
        h = xxhash.xxh64()
        with open(self.path, "rb") as f:
            left = self.body
            while left:
                chunk = f.read(min(left, 1 << 24))
                if not chunk:
                    break
                h.update(chunk)
                left -= len(chunk)
        if h.hexdigest() != self.footer["xxh64"]:
            raise CorruptRun(f"{self.path}: checksum mismatch")


def _u64_pairs(digests: list[bytes], width: int) -> np.ndarray:
    """(n, 2) uint64 from n byte strings of `width` >= 16 bytes (big-endian, so order = byte order)."""
    if not digests:
        return np.zeros((0, 2), np.uint64)
    return np.frombuffer(b"".join(d[:16] for d in digests), dtype=">u8").reshape(-1, 2).astype(np.uint64)


def id_hash(doc_id: bytes) -> bytes:
    return hashlib.blake2b(doc_id, digest_size=16).digest()


def write_runs(prefix: Path, ids: list[bytes], exact: list[bytes], lengths: np.ndarray, keys: np.ndarray,
               valid: np.ndarray) -> None:
    """The three sorted runs of one shard (see the module doc); memory: ~(bands + 6) x 16 bytes per document."""
    n = len(ids)
    rows = np.arange(n, dtype=np.uint32)
    idh = _u64_pairs([id_hash(i) for i in ids], 16)
    ex = _u64_pairs(exact, 16)
    order = np.lexsort((rows, idh[:, 1], idh[:, 0]))
    write_run(run_path(prefix, "ids"), {"key": idh[order, 0], "key2": idh[order, 1], "row": rows[order],
                                        "ex0": ex[order, 0], "ex1": ex[order, 1]})
    order = np.lexsort((rows, ex[:, 1], ex[:, 0]))
    write_run(run_path(prefix, "exact"), {"key": ex[order, 0], "key2": ex[order, 1], "row": rows[order],
                                          "length": np.asarray(lengths, np.int64)[order]})
    ok = np.flatnonzero(valid).astype(np.uint32)
    bands = keys.shape[1]
    band_key = ((np.arange(bands, dtype=np.uint64)[:, None] << np.uint64(32))
                | keys[ok].T.astype(np.uint64)).ravel()  # band-major, rows ascending inside a band
    band_row = np.tile(ok, bands)
    order = np.argsort(band_key, kind="stable")
    write_run(run_path(prefix, "bands"), {"key": band_key[order], "row": band_row[order]})


def check_runs(prefixes: Sequence[Path], verify: bool = True) -> list[int]:
    """Shards whose signature files are missing or whose runs are truncated or fail their checksum."""
    bad = []
    for s, prefix in enumerate(prefixes):
        try:
            if not prefix.with_suffix(".npz").exists():
                raise CorruptRun(f"{prefix}.npz is missing")
            for kind in RUN_KINDS:
                run = Run(run_path(prefix, kind))
                if verify:
                    run.verify()
        except (CorruptRun, FileNotFoundError):
            bad.append(s)
    return bad


def plan(prefixes: Sequence[Path], bands: int, part_rows: int = PART_ROWS, min_ranks: int = 1) -> dict[str, Any]:
    """Key ranges per step: enough ranks that none reads more than `part_rows` rows of its run kind."""
    totals = {kind: sum(Run(run_path(p, kind)).n for p in prefixes) for kind in RUN_KINDS}
    ranks = {kind: max(min_ranks, -(-totals[kind] // part_rows)) for kind in RUN_KINDS}
    return {"ranks": ranks, "rows": totals, "bands": bands}


def _key_range(kind: str, rank: int, ranks: int, bands: int) -> tuple[int, int]:
    top = bands << 32 if kind == "bands" else _TOP
    return rank * top // ranks, (rank + 1) * top // ranks if rank + 1 < ranks else _TOP


def _gather(prefixes: Sequence[Path], kind: str, lo: int, hi: int, masks: Sequence[np.ndarray] | None = None
            ) -> dict[str, np.ndarray]:
    """Rows in [lo, hi) of every shard's run, concatenated in shard order, with a `shard` column; with `masks`,
    only the rows r of shard s where masks[s][r]."""
    parts = []
    for s, p in enumerate(prefixes):
        part = Run(run_path(p, kind)).rows(lo, hi)
        if masks is not None:
            sel = np.asarray(masks[s])[part["row"].astype(np.int64)]
            part = {name: col[sel] for name, col in part.items()}
        parts.append(part)
    out = {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
    out["shard"] = np.repeat(np.arange(len(parts), dtype=np.uint64), [len(next(iter(p.values()))) for p in parts])
    return out


def ref(shard: np.ndarray, row: np.ndarray) -> np.ndarray:
    """Global document reference shard << 32 | row (uint64)."""
    return (np.asarray(shard, np.uint64) << np.uint64(32)) | np.asarray(row, np.uint64)


def _group_starts(*cols: np.ndarray) -> np.ndarray:
    """Boolean: row starts a new group of equal values over all `cols` (rows already sorted by them)."""
    n = len(cols[0])
    new = np.ones(n, dtype=bool)
    if n:
        new[1:] = np.logical_or.reduce([c[1:] != c[:-1] for c in cols])
    return new


# ------------------------------------------------------------------------------------------------ step 1
def ids_rank(prefixes: Sequence[Path], work: Path, ranks: int, rank: int) -> dict[str, Any]:
    """Later occurrences of ids in this rank's id-hash range: `work/ids-<rank>.npz` (ref, code)."""
    lo, hi = _key_range("ids", rank, ranks, 0)
    r = _gather(prefixes, "ids", lo, hi)
    order = np.lexsort((r["row"], r["shard"], r["key2"], r["key"]))
    r = {k: v[order] for k, v in r.items()}
    first = _group_starts(r["key"], r["key2"])
    head = np.maximum.accumulate(np.where(first, np.arange(len(first)), 0))
    later = np.flatnonzero(~first)
    same = (r["ex0"][later] == r["ex0"][head[later]]) & (r["ex1"][later] == r["ex1"][head[later]])
    _save(work / f"ids-{rank:05d}.npz", ref=ref(r["shard"][later], r["row"][later]),
          code=np.where(same, EXACT, DUP_ID).astype(np.int8))
    return {"rows": len(first), "repeats": len(later)}


def _load_refs(work: Path, pattern: str, *names: str) -> dict[str, np.ndarray]:
    parts = [np.load(p) for p in sorted(work.glob(pattern))]
    return {n: np.concatenate([p[n] for p in parts]) if parts else np.zeros(0, np.uint64) for n in names}


# ------------------------------------------------------------------------------------------------ step 2
def exact_rank(prefixes: Sequence[Path], work: Path, ranks: int, rank: int) -> dict[str, Any]:
    """Exact groups in this rank's key range: `work/exact-<rank>.npz` with, for every group of 2+ documents,
    each member's ref and its representative's ref, and the group size per representative."""
    lo, hi = _key_range("exact", rank, ranks, 0)
    repeats = _load_refs(work, "ids-*.npz", "ref", "code")
    dup_id = np.sort(repeats["ref"][repeats["code"] == DUP_ID])
    repeat = np.sort(repeats["ref"])
    r = _gather(prefixes, "exact", lo, hi)
    refs = ref(r["shard"], r["row"])
    keep = ~_isin(refs, dup_id)  # a duplicate_id belongs to no exact group
    r = {k: v[keep] for k, v in r.items()}
    refs = refs[keep]
    order = np.lexsort((refs, r["key2"], r["key"]))
    r, refs = {k: v[order] for k, v in r.items()}, refs[order]
    start = _group_starts(r["key"], r["key2"])
    group = np.cumsum(start) - 1
    size = np.bincount(group)
    multi = np.flatnonzero(size[group] > 1)
    members, rep_of, sizes = refs[multi], np.zeros(len(multi), np.uint64), {}
    if len(multi):
        # Representative: among first occurrences of ids, the longest text, then the smallest id.
        names = read_ids(prefixes, members[~_isin(members, repeat)])
        best: dict[int, tuple[int, str, int]] = {}
        for i, m in enumerate(members.tolist()):
            if m in names:
                cand = (-int(r["length"][multi[i]]), names[m], m)
                g = int(group[multi[i]])
                if g not in best or cand < best[g]:
                    best[g] = cand
        rep_of = np.array([best[int(g)][2] for g in group[multi]], dtype=np.uint64)
        sizes = {best[g][2]: int(size[g]) for g in best}
    _save(work / f"exact-{rank:05d}.npz", ref=members, rep=rep_of,
          rep_ref=np.array(list(sizes), np.uint64), rep_size=np.array(list(sizes.values()), np.int64))
    return {"rows": len(refs), "groups": int(start.sum())}


def _isin(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    if len(sorted_set) == 0 or len(values) == 0:
        return np.zeros(len(values), dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_set, values), len(sorted_set) - 1)
    return sorted_set[pos] == values


def read_ids(prefixes: Sequence[Path], refs: np.ndarray) -> dict[int, str]:
    """ref -> id string for the given refs (one shard's id column in memory at a time)."""
    out: dict[int, str] = {}
    refs = np.unique(np.asarray(refs, np.uint64))
    shards = refs >> np.uint64(32)
    for s in np.unique(shards).tolist():
        mine = refs[shards == s]
        with np.load(prefixes[s].with_suffix(".npz")) as z:
            col = z["ids"]
        rows = (mine & np.uint64(0xFFFFFFFF)).astype(np.int64)
        for m, doc in zip(mine.tolist(), col[rows].tolist()):
            out[m] = doc.decode("utf-8")
    return out


def candidate_mask(prefixes: Sequence[Path], work: Path) -> None:
    """`work/cand-<shard>.npy`: True for the documents that take part in near-dedup (the representatives)."""
    repeats = _load_refs(work, "ids-*.npz", "ref")["ref"]
    exact = _load_refs(work, "exact-*.npz", "ref", "rep")
    out = np.concatenate([repeats, exact["ref"][exact["ref"] != exact["rep"]]])
    for s, prefix in enumerate(prefixes):
        mask = np.ones(Run(run_path(prefix, "ids")).n, dtype=bool)
        mine = out[(out >> np.uint64(32)) == s]
        mask[(mine & np.uint64(0xFFFFFFFF)).astype(np.int64)] = False
        np.save(work / f"cand-{s:05d}.npy", mask)


# ------------------------------------------------------------------------------------------------ step 3
class _Shingles:
    """Shingle hashes of any document of any shard (`ShingleSource` over refs), files opened on demand."""

    def __init__(self, prefixes: Sequence[Path]) -> None:
        self.prefixes, self.stores = prefixes, {}

    def get(self, r: int) -> np.ndarray:
        s, row = r >> 32, r & 0xFFFFFFFF
        if s not in self.stores:
            with np.load(self.prefixes[s].with_suffix(".npz")) as z:
                offsets = z["offsets"]
            self.stores[s] = dedup._ShingleStore(self.prefixes[s].with_suffix(".u32"), offsets)
        return self.stores[s].get(row)

    def close(self) -> None:
        for store in self.stores.values():
            store.close()


def bands_rank(prefixes: Sequence[Path], work: Path, ranks: int, params: dict[str, int], threshold: float,
               index_dir: str | None, batch: str, rank: int) -> dict[str, Any]:
    """Verified candidate pairs and index matches in this rank's band-key range: `work/bands-<rank>.npz`."""
    lo, hi = _key_range("bands", rank, ranks, params["bands"])
    masks = [np.load(work / f"cand-{s:05d}.npy", mmap_mode="r") for s in range(len(prefixes))]
    r = _gather(prefixes, "bands", lo, hi, masks)  # representatives only
    refs, key = ref(r["shard"], r["row"]), r["key"]
    order = np.lexsort((refs, key))
    refs, key = refs[order], key[order]
    pairs = _bucket_pairs(key, refs)
    shingles = _Shingles(prefixes)
    try:
        verified = [(a, b) for a, b in pairs.tolist() if dedup.jaccard(shingles.get(a), shingles.get(b)) >= threshold]
        index = dedup.DedupIndex(index_dir, params) if index_dir else None
        old_ref, old_doc = _index_matches(index, batch, key, refs, shingles, threshold)
    finally:
        shingles.close()
    v = np.array(verified, dtype=np.uint64).reshape(-1, 2)
    _save(work / f"bands-{rank:05d}.npz", a=v[:, 0], b=v[:, 1], old_ref=old_ref, old_doc=old_doc)
    return {"rows": len(key), "candidates": len(pairs), "verified": len(verified), "index_matches": len(old_ref)}


def _bucket_pairs(key: np.ndarray, refs: np.ndarray) -> np.ndarray:
    """Unique (a, b) ref pairs a < b: each bucket member with the bucket's first member and its predecessor."""
    same = np.flatnonzero(key[1:] == key[:-1]) + 1
    if len(same) == 0:
        return np.zeros((0, 2), np.uint64)
    start = np.where(_group_starts(key), np.arange(len(key)), 0)
    head = np.maximum.accumulate(start)
    other = np.concatenate([refs[head[same]], refs[same - 1]])
    mine = np.concatenate([refs[same], refs[same]])
    a, b = np.minimum(other, mine), np.maximum(other, mine)
    pairs = np.unique(np.stack([a[a != b], b[a != b]], axis=1), axis=0)
    return pairs


def _index_matches(index: dedup.DedupIndex | None, batch: str, key: np.ndarray, refs: np.ndarray,
                   shingles: _Shingles, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """(ref, global indexed doc) of the earliest verified match of each new document, from this rank's bands."""
    segs = index.open() if index is not None else []
    earlier: dict[int, int] = {}
    band_of = (key >> np.uint64(32)).astype(np.int64)
    low = (key & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    try:
        for seg in segs:
            own = seg.member_range(batch)
            cands: set[tuple[int, int]] = set()
            for b in np.unique(band_of).tolist():
                sel = np.flatnonzero(band_of == b)
                q, k = seg.candidates(b, low[sel])
                cands.update(zip(refs[sel][q].tolist(), (k + seg.base).tolist()))
            for r, g in sorted(cands):
                if own is not None and own[0] <= g < own[1]:
                    continue
                if (g < earlier.get(r, 1 << 62)
                        and dedup.jaccard(shingles.get(r), seg.shingles(g - seg.base)) >= threshold):
                    earlier[r] = g
    finally:
        for seg in segs:
            seg.close()
    return np.array(list(earlier), np.uint64), np.array(list(earlier.values()), np.int64)


def _save(path: Path, **arrays: np.ndarray) -> None:
    tmp = path.with_name(f".part-{path.name}")  # not matched by the readers' globs (ids-*.npz) if left by a kill
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def disk_needed(docs: int, bands: int, shingle_bytes: int) -> int:
    """Temp bytes the signatures of `docs` documents take: runs (see the module doc), npz, shingles."""
    return docs * (16 * (bands + 5) + 64) + shingle_bytes


def check_free_space(directory: Path, needed: int) -> None:
    """Raise OSError naming `directory` when its file system has less than `needed` bytes free."""
    directory.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(directory).free
    if free < needed:
        raise OSError(f"dedup: {directory} has {free / 2**30:.2f} GiB free; this step needs about "
                      f"{needed / 2**30:.2f} GiB there (point the build or temp directory to a larger disk)")


# ------------------------------------------------------------------------------------------------ step 4
def batch_name(prefixes: Sequence[Path], work: Path) -> str:
    """The index name of the batch: `curation.dedup.batch_digest` over the representatives in shard order."""
    digest = hashlib.blake2b(digest_size=8)
    for s, prefix in enumerate(prefixes):
        mask = np.load(work / f"cand-{s:05d}.npy")
        with np.load(prefix.with_suffix(".npz")) as z:
            ids, digests = z["ids"][mask].tolist(), z["digests"][mask].tolist()
        for doc_id, text_digest in zip(ids, digests):
            digest.update(doc_id + b"\0" + text_digest + b"\0")
    return digest.hexdigest()


def _column(prefixes: Sequence[Path], refs: np.ndarray, name: str) -> dict[int, Any]:
    """ref -> value of npz column `name` (one shard's column in memory at a time)."""
    out: dict[int, Any] = {}
    shards = refs >> np.uint64(32)
    for s in np.unique(shards).tolist():
        mine = refs[shards == s]
        with np.load(prefixes[s].with_suffix(".npz")) as z:
            col = z[name]
        out.update(zip(mine.tolist(), col[(mine & np.uint64(0xFFFFFFFF)).astype(np.int64)].tolist()))
    return out


class _Clusters:
    """Connected components over the verified pairs, their kept documents and their index matches."""

    def __init__(self, prefixes: Sequence[Path], work: Path) -> None:
        from curation.dedup import _UnionFind

        pairs = _load_refs(work, "bands-*.npz", "a", "b", "old_ref", "old_doc")
        self.nodes = np.unique(np.concatenate([pairs["a"], pairs["b"]]))
        sets = _UnionFind(len(self.nodes))
        for a, b in zip(np.searchsorted(self.nodes, pairs["a"]).tolist(),
                        np.searchsorted(self.nodes, pairs["b"]).tolist()):
            sets.union(a, b)
        self.roots = sets.roots()
        names, lengths = read_ids(prefixes, self.nodes), _column(prefixes, self.nodes, "lengths")
        self.keeper: dict[int, int] = {}  # root -> ref of the kept document (longest text, then smallest id)
        for i, r in enumerate(self.nodes.tolist()):
            root = int(self.roots[i])
            best = self.keeper.get(root)
            if best is None or (-lengths[r], names[r]) < (-lengths[best], names[best]):
                self.keeper[root] = r
        self.names = {r: names[r] for r in self.keeper.values()}
        self.root_of = dict(zip(self.nodes.tolist(), self.roots.tolist()))
        self.old: dict[int, int] = {}  # root (or -1 - ref for a document in no pair) -> earliest indexed document
        for r, g in zip(pairs["old_ref"].tolist(), pairs["old_doc"].tolist()):
            key = self.group(r)
            self.old[key] = min(g, self.old.get(key, g))

    def group(self, r: int) -> int:
        """The component of representative r: its root, or -1 - r when it is in no verified pair."""
        return self.root_of.get(r, -1 - r)


def finish(prefixes: Sequence[Path], work: Path, decisions_dir: Path, *, index_dir: str | None, batch: str,
           update_index: bool, params: dict[str, int]) -> dict[str, Any]:
    """Step 4: decisions per shard (`decisions_dir/decisions-<shard>.parquet`) and the index segment."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    repeats = _load_refs(work, "ids-*.npz", "ref", "code")
    repeat_code = dict(zip(repeats["ref"].tolist(), repeats["code"].tolist()))
    exact = _load_refs(work, "exact-*.npz", "ref", "rep", "rep_ref", "rep_size")
    rep_of = dict(zip(exact["ref"].tolist(), exact["rep"].tolist()))
    group_size = dict(zip(exact["rep_ref"].tolist(), exact["rep_size"].tolist()))
    clusters = _Clusters(prefixes, work)
    comp_size: dict[int, int] = {}
    for i, r in enumerate(clusters.nodes.tolist()):
        root = int(clusters.roots[i])
        comp_size[root] = comp_size.get(root, 0) + group_size.get(r, 1)
    index = dedup.DedupIndex(index_dir, params) if index_dir else None
    segments = index.open() if index else []
    old_names = {g: dedup.index_id(segments, g) for g in set(clusters.old.values())}
    reps_needing_names = np.array(sorted(set(rep_of.values())), np.uint64)
    rep_names = read_ids(prefixes, reps_needing_names)
    old_set = set(old_names.values())

    schema = pa.schema([("code", pa.int8()), ("duplicate_of", pa.string()), ("dup_cluster", pa.string()),
                        ("dup_cluster_size", pa.int64())])
    decisions_dir.mkdir(parents=True, exist_ok=True)
    matched = reps = survivors_kept = overlap = 0
    kept_masks = []
    for s, prefix in enumerate(prefixes):
        with np.load(prefix.with_suffix(".npz")) as z:
            ids, valid = [b.decode("utf-8") for b in z["ids"].tolist()], z["valid"]
        cand = np.load(work / f"cand-{s:05d}.npy")
        kept = cand & valid
        cols: dict[str, list[Any]] = {name: [] for name in schema.names}
        base = s << 32
        for row, doc in enumerate(ids):
            r = base | row
            code, dup_of, cluster, size = KEEP, None, None, None
            if repeat_code.get(r) == DUP_ID:
                code, dup_of = DUP_ID, doc
            else:
                rep = rep_of.get(r, r)
                comp = clusters.group(rep)
                if comp in clusters.old:
                    code, dup_of = NEAR, old_names[clusters.old[comp]]
                    matched += 1
                    kept[row] = False
                else:
                    survivor = clusters.keeper.get(comp, rep)
                    name = clusters.names[survivor] if comp >= 0 else (doc if rep == r else rep_names[rep])
                    if r != rep:
                        code, dup_of = EXACT, name
                    elif survivor != rep:
                        code, dup_of = NEAR, name
                        kept[row] = False
                    else:
                        cluster = doc
                        size = comp_size[comp] if comp >= 0 else group_size.get(rep, 1)
                        survivors_kept += 1
                        overlap += doc in old_set
            for name_, value in zip(schema.names, (code, dup_of, cluster, size)):
                cols[name_].append(value)
        reps += int(cand.sum())
        kept_masks.append(kept)
        part = decisions_dir / f".decisions-{s:05d}.part"
        pq.write_table(pa.Table.from_pydict(cols, schema=schema), part)
        os.replace(part, decisions_dir / f"decisions-{s:05d}.parquet")
    for seg in segments:
        seg.close()
    if index is not None and update_index and not index.holds(batch):
        _write_segment(index, batch, prefixes, kept_masks, params["bands"])
    distinct = survivors_kept + len(old_set) - overlap
    return {"exact_groups": reps, "clusters": distinct, "duplicates_of_index": matched}


def _write_segment(index: dedup.DedupIndex, name: str, prefixes: Sequence[Path], kept: list[np.ndarray],
                   bands: int) -> None:
    """The kept documents as one index segment, band by band from the shards' sorted band runs."""
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=index.path))
    counts = [int(k.sum()) for k in kept]
    bases = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    n = int(bases[-1])
    doc_of = [np.cumsum(k) - 1 + bases[s] for s, k in enumerate(kept)]  # row -> segment document
    keys = np.lib.format.open_memmap(tmp / "keys.npy", "w+", np.uint32, (bands, n))
    docs = np.lib.format.open_memmap(tmp / "docs.npy", "w+", np.uint32, (bands, n))
    for b in range(bands):  # 16 bytes per kept document in memory, one band at a time
        k_parts, d_parts = [], []
        for s, prefix in enumerate(prefixes):
            rows = Run(run_path(prefix, "bands")).rows(b << 32, (b + 1) << 32)
            row = rows["row"].astype(np.int64)
            sel = kept[s][row]
            k_parts.append((rows["key"][sel] & np.uint64(0xFFFFFFFF)).astype(np.uint32))
            d_parts.append(doc_of[s][row[sel]])
        k, d = np.concatenate(k_parts), np.concatenate(d_parts)
        order = np.lexsort((d, k))
        keys[b], docs[b] = k[order], d[order]
    keys.flush(), docs.flush()
    del keys, docs
    ids = []
    out = dedup._ShingleStore(tmp / "shingles.u32")
    source = _Shingles(prefixes)
    try:
        for s, prefix in enumerate(prefixes):
            with np.load(prefix.with_suffix(".npz")) as z:
                ids.append(z["ids"][kept[s]])
            rows = np.flatnonzero(kept[s])
            for start in range(0, len(rows), 4096):
                out.extend([source.get((s << 32) | int(r)) for r in rows[start : start + 4096]])
    finally:
        source.close()
    np.save(tmp / "offsets.npy", out.freeze())
    out.close()
    width = max([a.dtype.itemsize for a in ids] + [1])
    np.save(tmp / "ids.npy", np.concatenate([a.astype(f"S{width}") for a in ids]) if ids else np.zeros(0, "S1"))
    index.publish(tmp, name, n)
