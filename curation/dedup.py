"""Deduplication: exact (normalised text) and near-duplicate (MinHash + LSH + exact-Jaccard verification).

Used by `curation.stages.run_dedup`; benchmarked by `python bench/dedup.py` (precision/recall on
`shared/data/near_dup`, throughput and peak RSS on a synthetic corpus).

* Normalisation (`normalize`): punctuation/symbols/controls dropped, NFKC, lowercase, whitespace
  collapsed. For CJK this is what the ground-truth pair lists in shared/data/near_dup used (SOURCES.md
  removes `[\\s\\W_]`); for English they split on `\\W` ("x-y" is two words there, one here).
* Shingles: character n-grams for CJK text (CJK share >= 0.3 of non-space characters; whitespace
  dropped), word n-grams otherwise. A text shorter than one shingle is one shingle; an empty text has
  none and is nobody's near-duplicate. Each shingle is a 32-bit hash computed with numpy for a whole
  batch of 4096 documents at once (`batch_shingle_hashes`: no Python work per character or word).
* MinHash: permutation i is x -> (a_i * x + b_i) mod 2^32 with a_i odd (a bijection of the 32-bit
  shingle hashes, which are already well mixed), computed for a batch as one (shingles x permutations)
  uint32 array and reduced with `np.minimum.reduceat`. uint32 halves the memory traffic of the uint64
  version (signatures 2x faster); `test_minhash_estimates_jaccard` checks the estimator is unbiased.
* LSH: bands x rows chosen so that a pair exactly at the threshold is a candidate with probability >= 0.99
  (`bands_rows_for_recall`; 21 x 6 at J 0.8 and 128 permutations: P = 0.998). That lets many pairs below
  the threshold through, so every candidate pair is verified by the exact Jaccard of the two 32-bit
  shingle-hash sets, which are kept on disk (read back with `os.pread`, so they do not count in RAM).
* Clustering: union-find over verified pairs. The kept document of a cluster is the longest text, then the
  smallest id; a document already in the persistent index (see `DedupIndex`) always wins over new ones.
* Memory per document: 4 bytes per band key (84 bytes at 21 bands), offset, length, the id string and
  the returned mapping (see bench/dedup.py for the measured RSS per million documents).
* Parallel: `workers` processes compute shingles, signatures and band keys; the rest is one process.
  The dedup stage does not use `near_duplicate_clusters`: it signs each shard (`write_shard_signatures`, which
  also writes sorted runs) and decides in ranks of bounded memory (`curation.dedup_sharded`).
* Persistent index: `DedupIndex`, segments of sorted band keys, merged by `compact` (flows.refresh calls
  `compact_index` after each committed refresh).
"""

from __future__ import annotations

import functools
import hashlib
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import unicodedata
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Protocol

import numpy as np
import regex
import xxhash

# A text is treated as CJK (character shingles) above this share of CJK characters among non-spaces.
CJK_SHINGLE_FRACTION = 0.3
# A pair exactly at the threshold must become an LSH candidate with at least this probability.
TARGET_CANDIDATE_PROBABILITY = 0.99
_BATCH = 4096  # documents per vectorised signature batch
# ... or fewer: a batch's shingling temporaries take ~60 bytes per character (code points, owners, positions,
# word hashes as int64), so 4096 web pages of 3,400 characters peaked at ~900 MB; 2M characters stay ~130 MB.
_BATCH_CHARS = 1 << 21
# Shingles per (shingles x permutations) block: 512 x 128 x 4 bytes = 256 KiB stays in a core's L2 cache;
# 8192 (4 MiB) made signatures 1.7x slower on 3,400-character web pages (2,048: 1.3x).
_CHUNK = 512
_NON_WORD = regex.compile(r"[^\p{L}\p{N}\p{M}\s]+")  # punctuation, symbols, controls
_EMPTY = np.zeros(0, dtype=np.uint32)
# Odd 64-bit constants for combining n units into one n-gram hash (xor then multiply, wrapping mod 2^64).
_MIX = np.array(
    [((0x9E3779B97F4A7C15 * (2 * k + 1) + 2 * k) | 1) & 0xFFFFFFFFFFFFFFFF for k in range(64)], dtype=np.uint64
)
_POW = np.array([pow(0x100000001B3, k, 1 << 64) for k in range(256)], dtype=np.uint64)  # FNV prime^k mod 2^64
_M1, _M2 = np.uint64(0xFF51AFD7ED558CCD), np.uint64(0xC4CEB9FE1A85EC53)
_S33, _S32 = np.uint64(33), np.uint64(32)


@functools.cache
def _dropped() -> np.ndarray:
    """One bool per code point: True where `_NON_WORD` matches. Built by running the regex itself over every
    code point once (~30 ms), so the table and the regex cannot disagree."""
    every = np.arange(sys.maxunicode + 1, dtype=np.uint32).tobytes().decode("utf-32-le", "surrogatepass")
    table = np.zeros(sys.maxunicode + 1, dtype=bool)
    for m in _NON_WORD.finditer(every):
        table[m.start() : m.end()] = True
    return table


# ASCII text needs no NFKC, and one str.translate deletes its punctuation and lowercases it (CPython's
# ASCII fast path): 8x faster than the regex. Same table as `_dropped`, plus str.lower on letters.
_ASCII = {c: None if _NON_WORD.match(chr(c)) else ord(chr(c).lower()) for c in range(128)}


def normalize(text: str) -> str:
    """NFKC, lowercase, drop punctuation/symbols/controls ("don't" -> "dont"), collapse whitespace."""
    if text.isascii():
        return " ".join(text.translate(_ASCII).split())
    # Punctuation is dropped first: most CJK text is then already NFKC (fullwidth ，。 were the
    # exceptions), and the quick check is ~100x cheaper than normalising (40 us per 500-char document).
    # Dropping by table lookup over the code points is 2x faster than `_NON_WORD.sub` on web pages.
    units = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    text = units[~_dropped()[units]].tobytes().decode("utf-32-le", "surrogatepass")
    if not unicodedata.is_normalized("NFKC", text):
        text = _NON_WORD.sub("", unicodedata.normalize("NFKC", text))
    return " ".join(text.lower().split())


def exact_key(text: str) -> bytes:
    """A 128-bit digest of the normalised text: equal keys mean exact duplicates."""
    return normalized_key(normalize(text))


def normalized_key(normalized: str) -> bytes:
    """`exact_key` of a text from its `normalize`d form (for callers that keep the normalised text)."""
    return hashlib.blake2b(normalized.encode("utf-8"), digest_size=16).digest()


def _codepoints(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


def _cjk_mask(units: np.ndarray) -> np.ndarray:
    """CJK code points: Han (incl. extensions and compatibility), kana, bopomofo, Hangul."""
    return (
        ((units >= 0x2E80) & (units <= 0x9FFF))
        | ((units >= 0xAC00) & (units <= 0xD7AF))
        | ((units >= 0xF900) & (units <= 0xFAFF))
        | ((units >= 0x20000) & (units <= 0x3FFFF))
    )


def is_cjk(normalized: str) -> bool:
    """True when character shingles should be used (CJK share of non-space characters >= 0.3)."""
    units = _codepoints(normalized)
    nonspace = units[units != 32]
    return len(nonspace) > 0 and _cjk_mask(nonspace).sum() / len(nonspace) >= CJK_SHINGLE_FRACTION


def _fmix(h: np.ndarray) -> np.ndarray:
    """murmur3's 64-bit finaliser (avalanche), in place on a uint64 array."""
    h ^= h >> _S33
    h *= _M1
    h ^= h >> _S33
    h *= _M2
    h ^= h >> _S33
    return h


def _windows(units: np.ndarray, owner: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hashes of the n-unit windows of a concatenation of documents that lie inside one document.

    Returns (hash64, owner of each window, documents with fewer than n units). A document shorter than n
    gets one hash of all its units, computed by the same fold with fewer steps (`_fold`).
    """
    m = len(units) - n + 1
    if m <= 0:
        return np.zeros(0, np.uint64), np.zeros(0, np.int64), np.unique(owner)
    h = _fold(units, n, m)
    inside = owner[: m] == owner[n - 1 :]
    counts = np.bincount(owner)
    short = np.flatnonzero((counts > 0) & (counts < n))
    return h[inside], owner[:m][inside], short


def _fold(units: np.ndarray, n: int, m: int) -> np.ndarray:
    h = np.zeros(m, dtype=np.uint64)
    for k in range(n):
        h ^= units[k : k + m]
        h *= _MIX[k % len(_MIX)]
    return _fmix(h)


def _add_short(units: np.ndarray, owner: np.ndarray, short: np.ndarray, hashes: list, owners: list) -> None:
    """One shingle (all its units) for each document shorter than one shingle; `owner` is sorted."""
    lo, hi = np.searchsorted(owner, short, "left"), np.searchsorted(owner, short, "right")
    for d, a, b in zip(short.tolist(), lo.tolist(), hi.tolist()):
        hashes.append(_fold(units[a:b], b - a, 1))
        owners.append(np.array([d]))


def _cjk_documents(units: np.ndarray, owner: np.ndarray, n_chars: np.ndarray) -> np.ndarray:
    """Per document: CJK share of its `n_chars` non-space characters >= CJK_SHINGLE_FRACTION.
    Only code points >= U+2E80 can be CJK: testing those alone is 5x faster on Latin text."""
    high = np.flatnonzero(units >= 0x2E80)
    n_cjk = np.bincount(owner[high[_cjk_mask(units[high])]], minlength=len(n_chars))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (n_chars > 0) & (n_cjk / n_chars >= CJK_SHINGLE_FRACTION)


def _word_hashes(units: np.ndarray, chars: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """64-bit hash of each word: `chars` are the positions of its characters in `units`, words begin at
    `starts`; sum((code point + 1) * P^position) mod 2^64, the position capped at 255, then avalanched."""
    # Position within the word as a cumulative sum of steps (+1, and back to 0 at each word's start):
    # 7x faster than arange - repeat(starts).
    step = np.ones(len(chars), dtype=np.int32)
    step[0] = 0
    step[starts[1:]] = 1 - np.diff(starts)
    position = np.minimum(np.cumsum(step, dtype=np.int32), len(_POW) - 1)
    values = units[chars].astype(np.uint64)
    values += np.uint64(1)
    values *= _POW[position]
    return _fmix(np.add.reduceat(values, starts))


def batch_shingle_hashes(texts: list[str], word_ngram: int = 5, char_ngram: int = 5) -> list[np.ndarray]:
    """For each already normalised text, the sorted unique uint32 hashes of its shingles (empty for "").

    Vectorised over the whole batch (no Python work per character, word or shingle): characters are code
    points; a word's hash is sum(code point_k * P^k) mod 2^64 (np.add.reduceat); an n-gram's hash folds
    its n units with xor-multiply; each document's hashes are then sorted and deduplicated as one run.
    """
    out = [_EMPTY] * len(texts)
    if not any(texts):
        return out
    # Each text is followed by a space, so that no word runs from one document into the next.
    lengths = np.fromiter((len(t) + 1 for t in texts), dtype=np.int64, count=len(texts))
    units = _codepoints(" ".join(texts) + " ")
    owner = np.repeat(np.arange(len(texts), dtype=np.int32), lengths)
    nonspace = units != 32
    cjk_doc = _cjk_documents(units, owner, lengths - np.bincount(owner[~nonspace], minlength=len(texts)))
    hashes, owners = [], []
    # CJK documents: character n-grams over the non-space characters.
    if cjk_doc.any():
        cjk_char = np.repeat(cjk_doc, lengths)
        sel = nonspace & cjk_char
        cu, co = units[sel].astype(np.uint64), owner[sel]
        h, o, short = _windows(cu, co, char_ngram)
        hashes.append(h), owners.append(o)
        _add_short(cu, co, short, hashes, owners)
        nonspace &= ~cjk_char
    # Other documents: word n-grams.
    chars = np.flatnonzero(nonspace)
    if len(chars):
        starts = np.flatnonzero(np.concatenate(([True], chars[1:] != chars[:-1] + 1)))
        words, wo = _word_hashes(units, chars, starts), owner[chars[starts]]
        h, o, short = _windows(words, wo, word_ngram)
        hashes.append(h), owners.append(o)
        _add_short(words, wo, short, hashes, owners)
    # Every document's shingles are one run of equal owners here (a document is in one path, and the windows
    # come in document order). Sorting each run on its own (a few hundred uint32s, in L1 cache) is 15x faster
    # than one sort of (owner << 32 | hash) over the batch; then the adjacent compare drops repeats.
    owner, low = np.concatenate(owners), (np.concatenate(hashes) >> _S32).astype(np.uint32)
    runs = np.flatnonzero(np.concatenate(([True], owner[1:] != owner[:-1])))
    for lo, hi in zip(runs.tolist(), np.append(runs[1:], len(low)).tolist()):
        low[lo:hi].sort()
    keep = np.concatenate(([True], low[1:] != low[:-1]))
    keep[runs] = True
    owner, low = owner[keep], low[keep]
    runs = np.flatnonzero(np.concatenate(([True], owner[1:] != owner[:-1])))
    for d, lo, hi in zip(owner[runs].tolist(), runs.tolist(), np.append(runs[1:], len(low)).tolist()):
        out[d] = low[lo:hi]
    return out


def shingle_hashes(normalized: str, word_ngram: int = 5, char_ngram: int = 5) -> np.ndarray:
    """Sorted unique uint32 hashes of the shingles of one already normalised text (empty for "")."""
    return batch_shingle_hashes([normalized], word_ngram, char_ngram)[0]


def shingles(normalized: str, word_ngram: int = 5, char_ngram: int = 5) -> set[str]:
    """Shingle strings (for inspection and tests; the pipeline only uses `shingle_hashes`)."""
    if not normalized:
        return set()
    if is_cjk(normalized):
        chars, n = normalized.replace(" ", ""), char_ngram
        return {chars[i : i + n] for i in range(max(1, len(chars) - n + 1))}
    words, n = normalized.split(), word_ngram
    return {" ".join(words[i : i + n]) for i in range(max(1, len(words) - n + 1))}


class MinHasher:
    """MinHash signatures (uint32) with `num_perm` multiply-shift permutations of 32-bit shingle hashes."""

    def __init__(self, num_perm: int = 128, seed: int = 1) -> None:
        rng = np.random.default_rng(seed)
        self.num_perm, self.seed = num_perm, seed
        self.a = (rng.integers(0, 1 << 31, size=num_perm, dtype=np.uint32) << np.uint32(1)) | np.uint32(1)
        self.b = rng.integers(0, 1 << 32, size=num_perm, dtype=np.uint32)

    def signatures(self, sets: list[np.ndarray]) -> np.ndarray:
        """(len(sets), num_perm) uint32; every set must be non-empty."""
        lengths = np.fromiter((len(s) for s in sets), dtype=np.int64, count=len(sets))
        if len(sets) == 0:
            return np.zeros((0, self.num_perm), dtype=np.uint32)
        assert lengths.min() > 0, "signatures of empty shingle sets are undefined"
        flat = np.concatenate(sets).astype(np.uint32)
        starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
        out = np.empty((len(sets), self.num_perm), dtype=np.uint32)
        # Blocks of whole short documents, < 2 x _CHUNK shingles each, so reduceat never spans a block
        # edge; a document longer than _CHUNK is folded chunk by chunk (scratch memory stays bounded).
        long_docs = np.flatnonzero(lengths > _CHUNK)
        doc = 0
        while doc < len(sets):
            lo = int(starts[doc])
            if lengths[doc] > _CHUNK:
                out[doc] = np.iinfo(np.uint32).max
                for c in range(lo, lo + int(lengths[doc]), _CHUNK):
                    block = self._permute(flat[c : min(c + _CHUNK, lo + int(lengths[doc]))])
                    np.minimum(out[doc], block.min(axis=0), out=out[doc])
                doc += 1
                continue
            end = max(int(np.searchsorted(starts, lo + _CHUNK, side="left")), doc + 1)
            following_long = long_docs[np.searchsorted(long_docs, doc) :]
            if len(following_long):
                end = min(end, int(following_long[0]))
            hi = int(starts[end - 1] + lengths[end - 1])
            out[doc:end] = np.minimum.reduceat(self._permute(flat[lo:hi]), starts[doc:end] - lo, axis=0)
            doc = end
        return out

    def _permute(self, hashes: np.ndarray) -> np.ndarray:
        """(len(hashes), num_perm) uint32: a_i * x + b_i mod 2^32 (numpy wraps uint32 silently)."""
        block = hashes[:, None] * self.a[None, :]
        block += self.b[None, :]
        return block

    def signature(self, shingle_hashes_: np.ndarray) -> np.ndarray:
        """One signature (num_perm,) uint32."""
        return self.signatures([shingle_hashes_])[0]


def band_keys(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(n, bands) uint32 hash of each band of each signature. Collisions only cost a verification."""
    n = len(signatures)
    keys = np.empty((n, bands), dtype=np.uint32)
    for band in range(bands):
        h = np.full(n, np.uint64(band + 1), dtype=np.uint64)
        for r in range(rows):
            h ^= signatures[:, band * rows + r].astype(np.uint64)
            h *= _MIX[r % len(_MIX)]
        keys[:, band] = (_fmix(h) >> _S32).astype(np.uint32)
    return keys


def lsh_probability(similarity: np.ndarray | float, bands: int, rows: int) -> np.ndarray | float:
    """Probability that two documents with this Jaccard similarity share at least one band."""
    return 1.0 - (1.0 - np.power(similarity, rows)) ** bands


def bands_rows_for_recall(
    threshold: float, num_perm: int, target: float = TARGET_CANDIDATE_PROBABILITY
) -> tuple[int, int]:
    """(bands, rows), bands * rows <= num_perm, with P(candidate | J = threshold) >= target and the most
    rows (the fewest candidates below the threshold) among those; all candidates are verified anyway.

    S-curve at 128 permutations, threshold 0.8 -> 21 bands x 6 rows:
    P(candidate) = 0.28 at J 0.5, 0.70 at 0.6, 0.96 at 0.7, 0.998 at 0.8, 1.0 at 0.9.
    (The FP+FN-area optimum datasketch uses, 9 x 13, gives 0.40 at 0.8: `optimal_bands_rows`.)
    Threshold 0.5 -> 42 x 3 (P 0.996 at 0.5, 0.59 at 0.2).
    """
    best: tuple[int, int] | None = None
    for rows in range(1, num_perm + 1):
        bands = num_perm // rows
        if lsh_probability(threshold, bands, rows) >= target:
            best = (bands, rows)
    return best if best is not None else (num_perm, 1)


def optimal_bands_rows(threshold: float, num_perm: int) -> tuple[int, int]:
    """datasketch's rule: minimise FP area + FN area of the S-curve (9 x 13 at 0.8/128; P(0.8) = 0.40)."""
    grid = np.linspace(0.0, 1.0, 2001)
    below, above = grid <= threshold, grid >= threshold
    best: tuple[float, int, int] | None = None
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            p = lsh_probability(grid, bands, rows)
            error = np.trapezoid(p[below], grid[below]) + np.trapezoid(1.0 - p[above], grid[above])
            if best is None or error < best[0]:
                best = (float(error), bands, rows)
    assert best is not None
    return best[1], best[2]


class _ShingleStore:
    """Append-only file of uint32 shingle hashes, read back with pread (not mapped, not in RSS)."""

    def __init__(self, path: Path, offsets: np.ndarray | None = None) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        # Offsets as int64 chunks, not a list of Python ints (36 bytes each: 36 MB per million documents).
        self._chunks: list[np.ndarray] = [np.zeros(1, dtype=np.int64)]
        self.offsets = np.zeros(1, dtype=np.int64) if offsets is None else offsets
        self.size = os.fstat(self.fd).st_size

    def extend(self, arrays: list[np.ndarray]) -> None:
        """Append many arrays with one write; call `freeze` before `get`."""
        data = np.concatenate([np.zeros(0, np.uint32), *arrays]).astype(np.uint32).tobytes()
        os.pwrite(self.fd, data, self.size)
        base = self.size // 4
        self._chunks.append(base + np.cumsum([len(a) for a in arrays], dtype=np.int64))
        self.size += len(data)

    def freeze(self) -> np.ndarray:
        self.offsets = np.concatenate(self._chunks)
        self._chunks = [self.offsets]
        return self.offsets

    def get(self, i: int) -> np.ndarray:
        lo, hi = int(self.offsets[i]), int(self.offsets[i + 1])
        return np.frombuffer(os.pread(self.fd, 4 * (hi - lo), 4 * lo), dtype=np.uint32)

    def close(self) -> None:
        os.close(self.fd)


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard of two sorted unique arrays."""
    if len(a) == 0 or len(b) == 0:
        return 0.0
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)


# Per-origin cap on index candidates: of one LSH bucket, at most this many documents of each batch that
# formed the index are verified (a bucket shared by thousands of boilerplate pages must not cost thousands).
MAX_PER_BUCKET = 8


class IndexSegment:
    """One segment of a `DedupIndex`, opened: sorted band keys (memory-mapped) and where its documents sit.

    `base` is the global number of its first document: segments are ordered by when they were added, and a
    compacted segment is the concatenation of the segments it replaced, so global numbers (and which indexed
    document is "earliest") do not change when segments are merged. `members` are (batch name, documents)
    in order: one for a segment as written, several for a compacted one.
    """

    def __init__(self, path: Path, base: int) -> None:
        self.path, self.base = path, base
        meta = _segment_meta(path)
        self.seq, self.members = int(meta["seq"]), [(str(m), int(c)) for m, c in meta["members"]]
        self.keys = np.load(path / "keys.npy", mmap_mode="r")  # (bands, n) sorted per band
        self.docs = np.load(path / "docs.npy", mmap_mode="r")  # (bands, n) document of each sorted key
        slots = path / "slots.npy"  # (bands, n) position among the same key and batch; absent: docs as written
        self.slots = np.load(slots, mmap_mode="r") if slots.exists() else None
        self.n = int(self.keys.shape[1])
        self._store: _ShingleStore | None = None

    def member_range(self, name: str) -> tuple[int, int] | None:
        """Global [start, stop) of batch `name` in this segment, or None."""
        start = self.base
        for member, count in self.members:
            if member == name:
                return start, start + count
            start += count
        return None

    def ids(self) -> np.ndarray:
        return np.load(self.path / "ids.npy", mmap_mode="r")

    def shingles(self, k: int) -> np.ndarray:
        """Shingle hashes of local document k."""
        if self._store is None:
            self._store = _ShingleStore(self.path / "shingles.u32", np.load(self.path / "offsets.npy"))
        return self._store.get(k)

    def candidates(self, band: int, query: np.ndarray, cap: int = MAX_PER_BUCKET) -> tuple[np.ndarray, np.ndarray]:
        """(query position, local doc) for every query key found in band `band`: at most `cap` per bucket and batch."""
        col = self.keys[band]
        # Sorted needles: numpy's searchsorted starts from the previous answer, 4x faster on a 10M-key band.
        order = np.argsort(query, kind="stable")
        lo, hi = np.empty(len(query), np.int64), np.empty(len(query), np.int64)
        lo[order] = np.searchsorted(col, query[order], side="left")
        hi[order] = np.searchsorted(col, query[order], side="right")
        hi = np.minimum(hi, lo + cap * len(self.members))
        found = np.flatnonzero(hi > lo)
        if len(found) == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        counts = (hi - lo)[found]
        qpos = np.repeat(found, counts)
        pos = np.repeat(lo[found], counts) + (np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts))
        if self.slots is not None:
            ok = np.asarray(self.slots[band][pos]) < cap
        else:
            ok = pos - np.repeat(lo[found], counts) < cap
        return qpos[ok], np.asarray(self.docs[band][pos[ok]], dtype=np.int64)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


def segment_batches(path: Path) -> list[str]:
    """Names of the batches a segment directory holds (one, or several once compacted)."""
    return [str(m) for m, _ in _segment_meta(path)["members"]]


def compact_index(path: str | Path, max_segments: int = 8, fanout: int = 4) -> list[str]:
    """`DedupIndex.compact` on an existing index directory (its own parameters); [] when there is none."""
    meta = Path(path) / "meta.json"
    if not meta.exists():
        return []
    index = DedupIndex(path, json.loads(meta.read_text())["params"])
    for tmp in index.path.glob(".tmp-*"):  # left by a killed write or merge (callers hold the refresh lock)
        shutil.rmtree(tmp, ignore_errors=True)
    return index.compact(max_segments, fanout)


def _segment_meta(path: Path) -> dict:
    """A segment's meta.json; segments written before it existed were single batches of unknown order."""
    meta = path / "meta.json"
    if meta.exists():
        return json.loads(meta.read_text())
    n = int(np.load(path / "ids.npy", mmap_mode="r").shape[0])
    return {"seq": -1, "members": [[path.name.removeprefix("seg-"), n]]}


class DedupIndex:
    """A persistent near-dup index of kept documents: a directory of immutable segments, merged as they pile up.

    `dir/meta.json` holds the hashing parameters (a reopened index must use the same); each `dir/seg-<name>/`
    holds, for the kept documents of one batch (or, once compacted, of several consecutive batches):
    `keys.npy` (bands, n) uint32 band keys sorted per band, `docs.npy` (bands, n) uint32 document of each sorted
    key, `ids.npy` (n,) bytes, `offsets.npy` and `shingles.u32` (shingle hashes for verification), `meta.json`
    (order number `seq`, the batches it holds) and, when compacted, `slots.npy` (for the per-batch bucket cap).
    Lookups are `searchsorted` on memory-mapped keys: a refresh costs O(new batch x segments x log(index)).
    `compact` keeps the number of segments at most `max_segments` by merging the run of `fanout` consecutive
    segments with the fewest documents (usually the newest, smallest ones), so each document is rewritten
    O(log(index)) times in all and lookups touch a bounded number of segments.
    The batch name (a digest of its ids and texts) makes re-running the same batch neither match against
    its own documents nor add them twice.
    """

    def __init__(self, path: str | Path, params: dict[str, int]) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        meta = self.path / "meta.json"
        if meta.exists():
            stored = json.loads(meta.read_text())["params"]
            if stored != params:
                raise ValueError(f"dedup index {self.path} was built with {stored}, not {params}")
        else:
            meta.write_text(json.dumps({"version": 1, "params": params}, indent=1))
        self.params = params

    def segments(self) -> list[Path]:
        """Segment directories in the order their documents were added. A batch merged into a compacted segment
        whose directory survived (the merge was killed before removing it) is removed here."""
        found = [p for p in self.path.glob("seg-*") if p.is_dir() and (p / "ids.npy").exists()]
        metas = {p: _segment_meta(p) for p in found}
        merged = {m for p, meta in metas.items() if len(meta["members"]) > 1 for m, _ in meta["members"]}
        live = []
        for p in found:
            if len(metas[p]["members"]) == 1 and p.name.removeprefix("seg-") in merged:
                shutil.rmtree(p, ignore_errors=True)
            else:
                live.append(p)
        return sorted(live, key=lambda p: (int(metas[p]["seq"]), p.name))

    def open(self) -> list[IndexSegment]:
        segs, base = [], 0
        for p in self.segments():
            segs.append(IndexSegment(p, base))
            base += segs[-1].n
        return segs

    def holds(self, name: str) -> bool:
        """True when batch `name` is in the index (as its own segment or merged into one)."""
        return any(name in (m for m, _ in _segment_meta(p)["members"]) for p in self.segments())

    def _next_seq(self) -> int:
        return 1 + max((int(_segment_meta(p)["seq"]) for p in self.segments()), default=-1)

    def add_segment(self, name: str, keys: np.ndarray, ids: list[str], store: ShingleSource, rows: np.ndarray) -> None:
        """Write the documents `rows` (indices into keys/ids/store) as segment `name` (atomic rename)."""
        if (self.path / f"seg-{name}").exists() or self.holds(name):
            return
        sel = np.asarray(rows, dtype=np.int64)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.path))
        k = keys[sel].T  # (bands, n)
        order = np.argsort(k, axis=1, kind="stable")
        np.save(tmp / "keys.npy", np.take_along_axis(k, order, axis=1))
        np.save(tmp / "docs.npy", order.astype(np.uint32))
        kept_ids = [ids[i].encode("utf-8") for i in sel.tolist()]
        np.save(tmp / "ids.npy", np.array(kept_ids, dtype=bytes) if kept_ids else np.zeros(0, "S1"))
        out = _ShingleStore(tmp / "shingles.u32")
        for start in range(0, len(sel), _BATCH):
            out.extend([store.get(int(i)) for i in sel[start : start + _BATCH]])
        np.save(tmp / "offsets.npy", out.freeze())
        out.close()
        self.publish(tmp, name, len(sel))

    def publish(self, tmp: Path, name: str, n: int) -> None:
        """Make the segment files written in `tmp` segment `name` of `n` documents (one atomic rename)."""
        (tmp / "meta.json").write_text(json.dumps({"seq": self._next_seq(), "members": [[name, n]]}))
        os.rename(tmp, self.path / f"seg-{name}")

    def compact(self, max_segments: int = 8, fanout: int = 4) -> list[str]:
        """Merge segments while there are more than `max_segments`; returns the names of the merged segments."""
        merged: list[str] = []
        while True:
            segs = self.segments()
            if len(segs) <= max_segments:
                return merged
            sizes = [int(np.load(p / "ids.npy", mmap_mode="r").shape[0]) for p in segs]
            width = max(2, min(fanout, len(segs)))
            start = min(range(len(segs) - width + 1), key=lambda i: (sum(sizes[i : i + width]), -i))
            run = segs[start : start + width]
            _merge_segments(self.path, run)
            merged.append(",".join(p.name for p in run))


def _merge_segments(root: Path, run: list[Path]) -> Path:
    """Write one segment holding the segments `run` (consecutive, in order), then remove them."""
    segs, base = [], 0
    for p in run:
        segs.append(IndexSegment(p, base))
        base += segs[-1].n
    members = [m for s in segs for m in s.members]
    name = "c" + hashlib.blake2b(json.dumps(members).encode(), digest_size=8).hexdigest()
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
    bands = segs[0].keys.shape[0]
    # Origin (member batch) of every merged document, for the per-batch bucket cap.
    origin = np.repeat(np.arange(len(members), dtype=np.int64), [c for _, c in members])
    keys = np.lib.format.open_memmap(tmp / "keys.npy", "w+", np.uint32, (bands, base))
    docs = np.lib.format.open_memmap(tmp / "docs.npy", "w+", np.uint32, (bands, base))
    slots = np.lib.format.open_memmap(tmp / "slots.npy", "w+", np.uint8, (bands, base))
    for b in range(bands):  # one band at a time: 16 bytes per indexed document in memory
        k = np.concatenate([np.asarray(s.keys[b]) for s in segs])
        d = np.concatenate([np.asarray(s.docs[b], dtype=np.int64) + s.base for s in segs])
        order = np.lexsort((d, k))
        k, d = k[order], d[order]
        o = origin[d]
        new_run = np.ones(len(k), dtype=bool)
        new_run[1:] = (k[1:] != k[:-1]) | (o[1:] != o[:-1])
        starts = np.flatnonzero(new_run)
        slot = np.arange(len(k)) - np.repeat(starts, np.diff(np.append(starts, len(k))))
        keys[b], docs[b], slots[b] = k, d, np.minimum(slot, 255)
    keys.flush(), docs.flush(), slots.flush()
    del keys, docs, slots
    ids = [np.asarray(s.ids()) for s in segs]
    width = max([a.dtype.itemsize for a in ids] + [1])
    np.save(tmp / "ids.npy", np.concatenate([a.astype(f"S{width}") for a in ids]))
    offsets, total = [np.zeros(1, np.int64)], 0
    with open(tmp / "shingles.u32", "wb") as out:
        for p in run:
            with open(p / "shingles.u32", "rb") as src:
                shutil.copyfileobj(src, out, 1 << 22)
            off = np.load(p / "offsets.npy")
            offsets.append(off[1:] + total)
            total += int(off[-1])
    np.save(tmp / "offsets.npy", np.concatenate(offsets))
    (tmp / "meta.json").write_text(json.dumps({"seq": segs[0].seq, "members": members}))
    for s in segs:
        s.close()
    final = root / f"seg-{name}"
    os.rename(tmp, final)
    for p in run:  # a kill before this leaves them behind: `DedupIndex.segments` removes them then
        shutil.rmtree(p, ignore_errors=True)
    return final


def _candidate_pairs(keys: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(m, 2) int64 pairs i < j sharing a band key: each member of a bucket is paired with the bucket's
    first member and with its predecessor (linear in the bucket size, not quadratic)."""
    idx = np.flatnonzero(valid)
    codes: list[np.ndarray] = []
    n = np.int64(len(keys))
    for band in range(keys.shape[1]):
        order = idx[np.argsort(keys[idx, band], kind="stable")]
        k = keys[order, band]
        same = np.flatnonzero(k[1:] == k[:-1]) + 1
        if len(same) == 0:
            continue
        start = np.zeros(len(k), dtype=np.int64)
        start[1:][k[1:] != k[:-1]] = np.flatnonzero(k[1:] != k[:-1]) + 1
        head = np.maximum.accumulate(start)
        for other in (order[head[same]], order[same - 1]):
            a, b = np.minimum(other, order[same]), np.maximum(other, order[same])
            keep = a != b
            codes.append(a[keep] * n + b[keep])
    if not codes:
        return np.zeros((0, 2), dtype=np.int64)
    unique = np.unique(np.concatenate(codes))
    return np.stack([unique // n, unique % n], axis=1)


class _UnionFind:
    """Disjoint sets over 0..n-1 (numpy parent array, path halving)."""

    def __init__(self, n: int) -> None:
        self.parent = np.arange(n, dtype=np.int64)

    def find(self, x: int) -> int:
        parent = self.parent
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = int(parent[x])
        return x

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def roots(self) -> np.ndarray:
        """The root of every element, by vectorised pointer jumping."""
        parent = self.parent
        while True:
            grand = parent[parent]
            if (grand == parent).all():
                return parent
            parent = grand


def near_duplicate_clusters(
    docs: Iterable[tuple[str, str]],
    *,
    threshold: float = 0.8,
    num_perm: int = 128,
    word_ngram: int = 5,
    char_ngram: int = 5,
    seed: int = 1,
    bands: int | None = None,
    rows: int | None = None,
    index_dir: str | Path | None = None,
    update_index: bool = True,
    workers: int = 1,
    index_matches: set[str] | None = None,
    normalized: dict[str, str] | None = None,
) -> dict[str, str]:
    """Map every document id to its cluster id: the id of the document the cluster keeps.

    `docs` yields (id, text); a repeated id raises ValueError (the stage drops repeats before calling).
    Singletons and empty texts map to themselves. A pair is a near-duplicate when the exact Jaccard of
    its shingle-hash sets is >= threshold; clusters are the connected components. The kept document is
    the longest text, then the smallest id.

    With `index_dir`, documents are also matched against the persistent index (`DedupIndex`): a new
    document whose cluster contains an indexed document maps to that earlier document's id. With
    `update_index`, the new batch's kept documents are then added to the index as one segment. When
    `index_matches` is given, the ids of new documents whose cluster matched an indexed document are added
    to it: that is how a caller tells a document seen again unchanged (same id as the indexed one, so it
    maps to itself) from a kept one.
    `workers` > 1 computes shingles and signatures in that many processes (batches of 4096 documents,
    at most two per worker in flight); bucketing, verification and clustering stay in this process.
    `normalized`: id -> `normalize(text)` already computed by the caller (the dedup stage keeps those of
    its exact pass); entries are used once and removed, the other texts are normalised here.
    """
    if bands is None or rows is None:
        bands, rows = bands_rows_for_recall(threshold, num_perm)
    if bands * rows > num_perm:
        raise ValueError(f"bands * rows ({bands} x {rows}) exceeds num_perm ({num_perm})")
    hasher = MinHasher(num_perm, seed)
    params = dict(num_perm=num_perm, seed=seed, bands=bands, rows=rows, word_ngram=word_ngram, char_ngram=char_ngram)
    index = DedupIndex(index_dir, params) if index_dir is not None else None
    workdir = Path(tempfile.mkdtemp(prefix="dedup-", dir=index.path if index else None))
    store = _ShingleStore(workdir / "shingles.u32")
    try:
        ids, lengths, keys, valid, digest = _signature_pass(
            docs, hasher, store, bands, rows, word_ngram, char_ngram, workers, normalized
        )
        store.freeze()
        return cluster_signatures(ids, lengths, keys, valid, digest, store, threshold=threshold, index=index,
                                  update_index=update_index, index_matches=index_matches)
    finally:
        store.close()
        shutil.rmtree(workdir, ignore_errors=True)


class ShingleSource(Protocol):
    """What clustering reads shingles from: `_ShingleStore`, or one view over the stores of many shards."""

    def get(self, i: int) -> np.ndarray: ...


def cluster_signatures(
    ids: list[str],
    lengths: np.ndarray,
    keys: np.ndarray,
    valid: np.ndarray,
    digest: str,
    store: ShingleSource,
    *,
    threshold: float,
    index: DedupIndex | None = None,
    update_index: bool = True,
    index_matches: set[str] | None = None,
) -> dict[str, str]:
    """`near_duplicate_clusters` from signatures computed already (by `signature_batch`, e.g. per shard).

    `ids`, `lengths` (text lengths), `keys` ((n, bands) band keys), `valid` (has shingles) and `store` (shingle
    hashes of document i) describe the same n documents in order; `digest` names the batch for the index.
    """
    n = len(ids)
    # Verified pairs inside the batch.
    sets = _UnionFind(n)
    pairs = _candidate_pairs(keys, valid)
    for a, b in pairs.tolist():
        if jaccard(store.get(a), store.get(b)) >= threshold:
            sets.union(a, b)
    # Verified matches against earlier batches: best (earliest) indexed document per new document.
    segments = index.open() if index else []
    earlier = match_index(segments, digest, keys, valid, store, threshold)
    roots = sets.roots()
    root_old: dict[int, int] = {}
    for i, old in earlier.items():
        r = int(roots[i])
        if r not in root_old or old < root_old[r]:
            root_old[r] = old
    # Keepers: only documents in clusters of 2+ need a Python-level comparison (dicts stay small).
    in_cluster = np.bincount(roots, minlength=n)[roots] > 1
    keeper: dict[int, int] = {}
    for i in np.flatnonzero(in_cluster).tolist():
        r = int(roots[i])
        best = keeper.get(r)
        if best is None or (-lengths[i], ids[i]) < (-lengths[best], ids[best]):
            keeper[r] = i
    result: dict[str, str] = {}
    kept = valid.copy()
    for i, r in enumerate(roots.tolist()):
        if r in root_old:
            result[ids[i]] = index_id(segments, root_old[r])
            kept[i] = False
            if index_matches is not None:
                index_matches.add(ids[i])
        elif in_cluster[i]:
            result[ids[i]] = ids[keeper[r]]
            kept[i] &= keeper[r] == i
        else:
            result[ids[i]] = ids[i]
    for seg in segments:
        seg.close()
    if index is not None and update_index:
        index.add_segment(digest, keys, ids, store, np.flatnonzero(kept))
    return result


def _signature_pass(
    docs: Iterable[tuple[str, str]],
    hasher: MinHasher,
    store: _ShingleStore,
    bands: int,
    rows: int,
    word_ngram: int,
    char_ngram: int,
    workers: int = 1,
    normalized: dict[str, str] | None = None,
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, str]:
    """Stream the documents once: ids, text lengths, (n, bands) band keys, has-shingles mask, batch digest."""
    ids: list[str] = []
    seen: set[str] = set()
    length_blocks: list[np.ndarray] = []
    key_blocks: list[np.ndarray] = []
    valid_blocks: list[np.ndarray] = []
    digest = hashlib.blake2b(digest_size=8)

    def consume(result: tuple[list[np.ndarray], np.ndarray, np.ndarray]) -> None:
        batch, ok, block = result
        store.extend(batch)
        key_blocks.append(block)
        valid_blocks.append(ok)

    known = normalized if normalized is not None else {}

    def batches() -> Iterator[tuple[list[str], list[str | None]]]:
        texts: list[str] = []
        norms: list[str | None] = []  # normalised text when the caller gave it, else None
        chars = 0
        for doc_id, text in _checked(docs, seen):
            ids.append(doc_id)
            digest.update(doc_id.encode("utf-8") + b"\0" + xxhash.xxh64_digest(text) + b"\0")
            texts.append(text)
            norms.append(known.pop(doc_id, None))
            chars += len(text)
            if len(texts) == _BATCH or chars >= _BATCH_CHARS:
                chars = 0
                length_blocks.append(np.fromiter(map(len, texts), dtype=np.int64, count=len(texts)))
                yield texts, norms
                texts, norms = [], []
        length_blocks.append(np.fromiter(map(len, texts), dtype=np.int64, count=len(texts)))
        yield texts, norms

    args = (hasher.num_perm, hasher.seed, bands, rows, word_ngram, char_ngram)
    if workers <= 1:
        for texts, norms in batches():
            consume(_hash_batch(texts, *args, norms))
    else:
        # At most 2 batches per worker in flight, so memory stays bounded whatever the corpus size.
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            pending: deque[Future] = deque()
            for texts, norms in batches():
                pending.append(pool.submit(_hash_batch, texts, *args, norms))
                if len(pending) >= 2 * workers:
                    consume(pending.popleft().result())
            while pending:
                consume(pending.popleft().result())
    keys = np.concatenate(key_blocks)
    valid = np.concatenate(valid_blocks)
    return ids, np.concatenate(length_blocks), keys, valid, digest.hexdigest()


@functools.cache
def _hasher(num_perm: int, seed: int) -> MinHasher:
    return MinHasher(num_perm, seed)


def _hash_batch(
    texts: list[str], num_perm: int, seed: int, bands: int, rows: int, word_ngram: int, char_ngram: int,
    norms: list[str | None] | None = None,
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Shingle hashes, has-shingles mask and (n, bands) band keys of raw texts (runs in workers too);
    `norms[i]`, when not None, is `normalize(texts[i])` already computed."""
    norms = norms or [None] * len(texts)
    normalized = [normalize(t) if n is None else n for t, n in zip(texts, norms)]
    batch = batch_shingle_hashes(normalized, word_ngram, char_ngram)
    ok = np.fromiter((len(s) > 0 for s in batch), dtype=bool, count=len(batch))
    block = np.zeros((len(batch), bands), dtype=np.uint32)
    block[ok] = band_keys(_hasher(num_perm, seed).signatures([s for s in batch if len(s)]), bands, rows)
    return batch, ok, block


def _checked(docs: Iterable[tuple[str, str]], seen: set[str]) -> Iterator[tuple[str, str]]:
    for doc_id, text in docs:
        if doc_id in seen:
            raise ValueError(f"duplicate document id {doc_id!r}: ids must be unique")
        seen.add(doc_id)
        yield doc_id, text or ""


def match_index(segments: list[IndexSegment], batch: str, keys: np.ndarray, valid: np.ndarray,
                store: ShingleSource, threshold: float) -> dict[int, int]:
    """For each new document i (rows of `keys`), the global number of the earliest indexed document whose
    shingles are verified Jaccard >= threshold, when there is one. Documents of batch `batch` itself (a re-run
    of a batch already indexed) are never matched."""
    earlier: dict[int, int] = {}
    new_idx = np.flatnonzero(valid)
    for seg in segments:
        own = seg.member_range(batch)
        pairs = set()
        for band in range(seg.keys.shape[0]):
            q, k = seg.candidates(band, keys[new_idx, band])
            pairs.update(zip(new_idx[q].tolist(), (k + seg.base).tolist()))
        for i, g in sorted(pairs):
            if own is not None and own[0] <= g < own[1]:
                continue
            if g < earlier.get(i, 1 << 62) and jaccard(store.get(i), seg.shingles(g - seg.base)) >= threshold:
                earlier[i] = g
    return earlier


def index_id(segments: list[IndexSegment], g: int) -> str:
    """The id of indexed document number g (global numbering of `DedupIndex.open`)."""
    for seg in segments:
        if seg.base <= g < seg.base + seg.n:
            return bytes(seg.ids()[g - seg.base]).decode("utf-8")
    raise IndexError(f"no indexed document {g}")


# ---------------------------------------------------------------------------- per-shard signatures
# The sharded dedup stage computes everything that needs a document's text once per shard, in parallel
# (`write_shard_signatures`), and clusters from those files alone in one process (`ShardSignatures`,
# `ShardShingles`, `cluster_signatures`). Files per shard: `<prefix>.npz` (ids, exact keys, lengths, text
# digests, band keys, has-shingles mask, shingle offsets) and `<prefix>.u32` (the shingle hashes).


def write_shard_signatures(docs: Iterable[tuple[str, str]], prefix: Path, *, num_perm: int, seed: int,
                           bands: int, rows: int, word_ngram: int, char_ngram: int,
                           tick: Callable[[int], None] | None = None) -> int:
    """Signatures of every (id, text) of one shard, in order (repeated ids included); returns the count."""
    prefix.parent.mkdir(parents=True, exist_ok=True)
    shingles = prefix.with_suffix(".u32")
    shingles.unlink(missing_ok=True)  # a rerun of a killed shard starts the file again
    store = _ShingleStore(shingles)
    ids: list[bytes] = []
    exact: list[bytes] = []
    digests: list[bytes] = []
    lengths: list[int] = []
    key_blocks: list[np.ndarray] = [np.zeros((0, bands), dtype=np.uint32)]
    valid_blocks: list[np.ndarray] = [np.zeros(0, dtype=bool)]
    texts: list[str] = []
    chars = 0

    def flush() -> None:
        norms = [normalize(t) for t in texts]
        exact.extend(normalized_key(n) for n in norms)
        batch, ok, block = _hash_batch(texts, num_perm, seed, bands, rows, word_ngram, char_ngram, norms)
        store.extend(batch)
        key_blocks.append(block)
        valid_blocks.append(ok)
        texts.clear()
        if tick is not None:
            tick(len(ids))

    try:
        for doc_id, text in docs:
            text = text or ""
            ids.append(doc_id.encode("utf-8"))
            digests.append(xxhash.xxh64_digest(text))
            lengths.append(len(text))
            texts.append(text)
            chars += len(text)
            if len(texts) == _BATCH or chars >= _BATCH_CHARS:
                flush()
                chars = 0
        flush()
        np.savez(prefix.with_suffix(".part.npz"), ids=np.array(ids, dtype=bytes) if ids else np.zeros(0, "S1"),
                 exact=np.array(exact, dtype="S16") if exact else np.zeros(0, "S16"),
                 digests=np.array(digests, dtype="S8") if digests else np.zeros(0, "S8"),
                 lengths=np.array(lengths, dtype=np.int64), keys=np.concatenate(key_blocks),
                 valid=np.concatenate(valid_blocks), offsets=store.freeze())
        # The sorted runs the bounded-memory decision steps read; the .npz, renamed last, marks the shard done.
        from curation.dedup_sharded import write_runs

        write_runs(prefix, ids, exact, np.array(lengths, dtype=np.int64), np.concatenate(key_blocks),
                   np.concatenate(valid_blocks))
        os.replace(prefix.with_suffix(".part.npz"), prefix.with_suffix(".npz"))
    finally:
        store.close()
    return len(ids)


class ShardSignatures:
    """One shard's signature file, loaded (ids as str; the shingles stay on disk)."""

    def __init__(self, prefix: Path) -> None:
        with np.load(prefix.with_suffix(".npz")) as z:
            self.ids = [b.decode("utf-8") for b in z["ids"].tolist()]
            self.exact = z["exact"].tolist()  # 16-byte exact keys (bytes)
            self.digests = z["digests"].tolist()
            self.lengths = z["lengths"]
            self.keys = z["keys"]
            self.valid = z["valid"]
            offsets = z["offsets"]
        self.store = _ShingleStore(prefix.with_suffix(".u32"), offsets)

    def close(self) -> None:
        self.store.close()


class ShardShingles:
    """The shingles of selected documents of many shards as one numbered sequence (`ShingleSource`)."""

    def __init__(self, shards: list[ShardSignatures], picks: list[tuple[int, int]]) -> None:
        self.shards, self.picks = shards, picks  # picks[i] = (shard number, row in shard)

    def get(self, i: int) -> np.ndarray:
        shard, row = self.picks[i]
        return self.shards[shard].store.get(row)


def batch_digest(pairs: Iterable[tuple[str, bytes]]) -> str:
    """The index name of a batch from (id, xxh64 digest of its text) in order (as `_signature_pass` computes it)."""
    digest = hashlib.blake2b(digest_size=8)
    for doc_id, text_digest in pairs:
        digest.update(doc_id.encode("utf-8") + b"\0" + text_digest + b"\0")
    return digest.hexdigest()
