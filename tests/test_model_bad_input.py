"""Bad input to the training code: shards from another tokenizer, a checkpoint of another model,
unknown schedules. Each must be a one-line ValueError that names the fix, raised before any work is lost.
Synthetic token shards only; the tokenizer/SFT cases live in test_model_pipeline.py (they need a tokenizer)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from model.config import PretrainConfig
from model.data import BatchLoader
from model.pretrain import pretrain
from model.runtime import lr_at
from test_model import write_shards

TINY = dict(depth=1, seq_len=16, batch_size=4, steps=4, warmup_steps=1, eval_every=4, eval_batches=1, device="cpu")


def docs(rng: np.random.Generator, n: int, top: int = 90) -> list[list[int]]:
    return [[int(t) for t in rng.integers(3, top, int(rng.integers(10, 40)))] for _ in range(n)]


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(0)
    return write_shards(tmp_path_factory.mktemp("ok"), {"train": [docs(rng, 60)], "val": [docs(rng, 10)]})


def test_shard_ids_past_the_vocabulary_are_a_clear_error(tmp_path: Path) -> None:
    """Shards encoded by a 2,000-id tokenizer but labelled (meta.json) as a 1,000-id one."""
    rng = np.random.default_rng(1)
    root = write_shards(tmp_path, {"train": [docs(rng, 40, top=2000)], "val": [docs(rng, 8, top=2000)]})
    loader = BatchLoader(root, "train", 4, 16)
    with pytest.raises(ValueError, match=r"token id \d+ .* >= its meta.json vocab_size 1000: .*another tokenizer"):
        for _ in range(len(loader)):
            loader.next_batch()
    with pytest.raises(ValueError, match="another tokenizer"):
        pretrain(root, tmp_path / "out", PretrainConfig(**TINY))  # type: ignore[arg-type]


def test_resume_from_a_checkpoint_of_another_model_is_a_clear_error(shards: Path, tmp_path: Path) -> None:
    half = pretrain(shards, tmp_path / "a", PretrainConfig(**TINY), stop_after=2)  # type: ignore[arg-type]
    assert half is not None and half["steps"] == 2
    ckpt = tmp_path / "a" / "checkpoint"
    deeper = PretrainConfig(**{**TINY, "depth": 2})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"another model \(n_layer=1 there, 2 here; n_embd=64 there, 128 here"):
        pretrain(shards, tmp_path / "b", deeper, resume_from=ckpt)
    longer = PretrainConfig(**{**TINY, "seq_len": 24})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="seq_len=16 there, 24 here"):
        pretrain(shards, tmp_path / "c", longer, resume_from=ckpt)

    # The same depth on shards of another vocabulary (another tokenizer): also refused before training.
    other = tmp_path / "other"
    other.mkdir()
    for f in shards.iterdir():
        (other / f.name).write_bytes(f.read_bytes())
    meta = json.loads((other / "meta.json").read_text())
    (other / "meta.json").write_text(json.dumps({**meta, "vocab_size": 512}))
    with pytest.raises(ValueError, match="vocab_size=1000 there, 512 here"):
        pretrain(other, tmp_path / "d", PretrainConfig(**TINY), resume_from=ckpt)  # type: ignore[arg-type]
    assert not (tmp_path / "d" / "metrics.jsonl").exists()  # refused before the first step


def test_a_directory_without_a_checkpoint_is_a_clear_error(shards: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no training checkpoint"):
        pretrain(shards, tmp_path / "x", PretrainConfig(**TINY), resume_from=tmp_path)  # type: ignore[arg-type]


def test_unknown_schedule_is_rejected() -> None:
    with pytest.raises(ValueError, match="cosine"):
        PretrainConfig(schedule="linear")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'cosine' or 'wsd'"):
        lr_at(5, 10, 1, 1.0, 0.0, schedule="step")
