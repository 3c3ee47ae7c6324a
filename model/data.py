"""Reading token shards (layout in docs/CONTRACTS.md) and cutting them into training batches.

A split is a list of `.bin` files (flat little-endian uint16/uint32 token arrays, memory-mapped so a
corpus never has to fit in RAM) with matching `.idx.npy` document start offsets.

Windows of `seq_len + 1` tokens (inputs plus the shifted targets) start at document boundaries, so
most windows begin with BOS and the model learns what a document start looks like (BOS-aligned
packing); a short document is filled greedily with the documents that follow it. A document longer
than `seq_len` also gets windows at every `seq_len` tokens inside it, otherwise everything past its
first window would never be trained on (a web page or Wikipedia article is often thousands of
tokens). The price of BOS alignment: tokens of short documents also appear as the fill of the
windows of the documents before them, so they are seen more than once per epoch.

Windows are visited in a seeded random permutation per epoch; the loader's whole state is
(seed, epoch, position), so it can be saved and restored exactly.

Data parallel: with `world_size` > 1 every rank draws the same permutation, cut to a multiple of
world_size, and takes every world_size-th entry from its rank on: the ranks see disjoint windows,
the same number of them, so they advance in lockstep and rank 0's (epoch, position) is every rank's
state. The few windows cut off an epoch's end differ from epoch to epoch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

DTYPES = {"uint16": np.dtype("<u2"), "uint32": np.dtype("<u4")}  # the contract fixes little-endian


@dataclass(frozen=True)
class SplitInfo:
    files: list[str]
    tokens: int
    docs: int
    bytes: int


class TokenShards:
    """The metadata of a token-shard directory: dtype, vocab, special ids and per-split counts."""

    def __init__(self, tokens_dir: Path | str) -> None:
        self.dir = Path(tokens_dir)
        meta_path = self.dir / "meta.json"
        if not meta_path.is_file():
            raise FileNotFoundError(f"{meta_path} not found: pass the output directory of the tokens stage")
        meta = json.loads(meta_path.read_text())
        try:
            self.dtype = DTYPES[meta["dtype"]]
            self.vocab_size = int(meta["vocab_size"])
            self.bos_id = int(meta["bos_id"])
            self.eos_id = int(meta["eos_id"])
            # Optional: SHA-256 of the encoding tokenizer.model, for a check that vocabulary size alone
            # cannot do (two tokenizers of the same size); shards without it skip that check.
            self.tokenizer_sha256: str | None = meta.get("tokenizer_sha256")
            self.splits = {
                name: SplitInfo(list(s["files"]), int(s["tokens"]), int(s["docs"]), int(s["bytes"]))
                for name, s in meta["splits"].items()
            }
        except KeyError as e:
            raise ValueError(f"{meta_path}: missing or unsupported key {e}; regenerate the token shards") from e

    def split(self, name: str) -> SplitInfo:
        if name not in self.splits:
            raise ValueError(f"split '{name}' not in {self.dir / 'meta.json'} (has: {sorted(self.splits)})")
        return self.splits[name]

    def bytes_per_text_token(self, name: str) -> float:
        """UTF-8 bytes per non-BOS token of a split: converts nats/token into bits/byte."""
        s = self.split(name)
        text_tokens = s.tokens - s.docs  # every document carries exactly one BOS, which has no bytes
        if s.bytes <= 0 or text_tokens <= 0:
            raise ValueError(f"split '{name}' has no text bytes/tokens in meta.json; cannot compute bits per byte")
        return s.bytes / text_tokens

    def open(self, name: str) -> list[tuple[np.memmap, np.ndarray]]:
        """Memory-map every shard of a split; returns (tokens, document starts) pairs."""
        shards = []
        for fname in self.split(name).files:
            bin_path = self.dir / fname
            idx_path = bin_path.with_name(bin_path.name.removesuffix(".bin") + ".idx.npy")
            if not bin_path.is_file() or not idx_path.is_file():
                raise FileNotFoundError(f"{bin_path} or {idx_path.name} missing: regenerate the token shards")
            if bin_path.stat().st_size == 0:
                continue  # np.memmap cannot map an empty file; an empty shard has no windows anyway
            tokens = np.memmap(bin_path, dtype=self.dtype, mode="r")
            starts = np.load(idx_path, allow_pickle=False).astype(np.int64)
            shards.append((tokens, starts))
        return shards


def window_starts(doc_starts: np.ndarray, n_tokens: int, seq_len: int) -> np.ndarray:
    """Offsets of all windows of one shard: each document start, plus every seq_len tokens inside
    documents longer than seq_len; windows that would run past the shard's end are dropped."""
    if doc_starts.size == 0:
        return np.zeros(0, dtype=np.int64)
    doc_starts = np.sort(doc_starts)
    doc_ends = np.append(doc_starts[1:], n_tokens)
    n_tiles = np.maximum(1, -(-(doc_ends - doc_starts) // seq_len))  # ceil division
    first = np.repeat(doc_starts, n_tiles)
    tile = np.arange(n_tiles.sum()) - np.repeat(np.cumsum(n_tiles) - n_tiles, n_tiles)
    starts = first + tile * seq_len
    return starts[starts + seq_len + 1 <= n_tokens]


class BatchLoader:
    """Endless stream of (x, y) batches of shape (batch_size, seq_len) from one split.

    y is x shifted by one token. Deterministic given the seed; `state_dict()` / `load_state_dict()`
    resume the exact stream.
    """

    def __init__(
        self,
        tokens_dir: Path | str,
        split: str,
        batch_size: int,
        seq_len: int,
        seed: int = 0,
        device: torch.device | str = "cpu",
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, world_size={world_size})")
        self.rank, self.world_size = rank, world_size
        self.meta = TokenShards(tokens_dir)
        self.split, self.batch_size, self.seq_len, self.seed = split, batch_size, seq_len, seed
        self.device = torch.device(device)
        self.shards = self.meta.open(split)
        per_shard = [window_starts(starts, len(tokens), seq_len) for tokens, starts in self.shards]
        # One (shard, offset) row per window; int64 so multi-GB shards index correctly.
        self.windows = np.concatenate(
            [np.stack((np.full(len(w), i, dtype=np.int64), w), axis=1) for i, w in enumerate(per_shard)]
            or [np.zeros((0, 2), dtype=np.int64)]
        )
        if len(self.windows) == 0:
            total = self.meta.split(split).tokens
            raise ValueError(
                f"split '{split}' has no window of seq_len+1={seq_len + 1} tokens ({total} tokens in all): "
                "lower seq_len or add data"
            )
        if len(self.windows) < world_size:
            raise ValueError(f"split '{split}' has {len(self.windows)} windows, fewer than {world_size} ranks")
        self.epoch = 0
        self.pos = 0
        self._order = self._permutation(self.epoch)

    def __len__(self) -> int:
        """Number of windows this rank visits in one epoch."""
        return len(self.windows) // self.world_size

    def _permutation(self, epoch: int) -> np.ndarray:
        # Seeding with (seed, epoch) makes each epoch's order a pure function of the state.
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.windows))
        if self.world_size == 1:
            return order
        return order[: len(order) // self.world_size * self.world_size][self.rank :: self.world_size]

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        rows = np.empty((self.batch_size, self.seq_len + 1), dtype=np.int64)
        for r in range(self.batch_size):
            if self.pos == len(self._order):
                self.epoch += 1
                self.pos = 0
                self._order = self._permutation(self.epoch)
            shard, offset = self.windows[self._order[self.pos]]
            self.pos += 1
            rows[r] = self.shards[shard][0][offset : offset + self.seq_len + 1]
        # An id past the vocabulary would index past the embedding table: an IndexError on the CPU, a
        # device-side assert that kills the process on CUDA. A max over ~33k ints is ~10 us per batch.
        top = int(rows.max())
        if top >= self.meta.vocab_size:
            raise ValueError(
                f"token id {top} in {self.meta.dir} is >= its meta.json vocab_size {self.meta.vocab_size}: the "
                "shards were written by another tokenizer than meta.json says; regenerate them (lmpipe run "
                "tokenizer --refresh tokens)"
            )
        batch = torch.from_numpy(rows)
        if self.device.type == "cuda":
            batch = batch.pin_memory().to(self.device, non_blocking=True)
        else:
            batch = batch.to(self.device)
        return batch[:, :-1], batch[:, 1:]

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable position in the stream (the same on every rank; the rank is not part of it)."""
        return {
            "split": self.split,
            "seed": self.seed,
            "epoch": self.epoch,
            "pos": self.pos,
            "windows": len(self.windows),
            "world_size": self.world_size,
            # Provenance only (in the artifact store the directory name is the tokens artifact id); a
            # moved store must still resume, so load_state_dict checks the window count, not the path.
            "tokens_dir": str(self.meta.dir),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["windows"] != len(self.windows) or state["split"] != self.split:
            raise ValueError("loader state was saved for different token shards or seq_len; cannot resume")
        if int(state.get("world_size", 1)) != self.world_size:
            raise ValueError(
                f"loader state was saved with {state.get('world_size', 1)} data-parallel ranks, not "
                f"{self.world_size}: resume with the same nproc"
            )
        self.seed, self.epoch, self.pos = int(state["seed"]), int(state["epoch"]), int(state["pos"])
        self._order = self._permutation(self.epoch)
