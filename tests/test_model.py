"""Unit tests of the model package on synthetic inputs: config, GPT (shapes, causality, masks, KV
cache), token-shard loader, checkpoints, sampling and the LR schedule. No data files needed."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from safetensors.torch import load_file

from model import checkpoint
from model.config import GPTConfig, PretrainConfig, SFTConfig
from model.data import BatchLoader, window_starts
from model.gpt import GPT, KVCache, count_params, sample_next
from model.runtime import lr_at, make_adamw


def tiny_config(**over: object) -> GPTConfig:
    base = dict(vocab_size=97, seq_len=32, n_layer=2, n_embd=64, n_head=4, n_kv_head=2)
    base.update(over)
    return GPTConfig(**base)  # type: ignore[arg-type]


def tiny_model(seed: int = 0, **over: object) -> GPT:
    torch.manual_seed(seed)
    return GPT(tiny_config(**over)).eval()


# --- config -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("depth", "width", "heads", "kv"), [(1, 64, 1, 1), (2, 128, 2, 1), (3, 192, 3, 3), (4, 256, 4, 2), (12, 768, 12, 6)]
)
def test_from_depth_scaling(depth: int, width: int, heads: int, kv: int) -> None:
    cfg = GPTConfig.from_depth(depth, vocab_size=4096, seq_len=128)
    assert (cfg.n_layer, cfg.n_embd, cfg.n_head, cfg.n_kv_head, cfg.head_dim) == (depth, width, heads, kv, 64)


def test_configs_are_frozen_and_strict() -> None:
    cfg = PretrainConfig()
    with pytest.raises(ValidationError):
        PretrainConfig(stepz=3)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        cfg.steps = 5  # type: ignore[misc]
    with pytest.raises(ValidationError):
        SFTConfig(val_fraction=1.5)
    with pytest.raises(ValidationError):
        tiny_config(n_head=3)  # 64 not divisible by 3
    assert PretrainConfig.model_fields["lr"].description


# --- GPT ----------------------------------------------------------------------------------------


def test_forward_shapes_and_loss() -> None:
    model = tiny_model()
    idx = torch.randint(0, 97, (3, 16))
    logits, loss = model(idx)
    assert logits.shape == (3, 16, 97) and loss is None
    _, loss = model(idx, torch.randint(0, 97, (3, 16)))
    assert loss is not None and loss.ndim == 0
    # An untrained model is close to uniform: loss near ln(vocab) on random targets.
    assert abs(float(loss.detach()) - math.log(97)) < 0.5


def test_ignore_index_and_loss_mask_agree() -> None:
    model = tiny_model()
    idx = torch.randint(0, 97, (2, 12))
    targets = torch.randint(0, 97, (2, 12))
    mask = torch.zeros(2, 12, dtype=torch.long)
    mask[:, 5:9] = 1
    _, masked = model(idx, targets, loss_mask=mask)
    _, ignored = model(idx, targets.masked_fill(mask == 0, -100))
    logits, _ = model(idx)
    manual = torch.nn.functional.cross_entropy(logits[:, 5:9].flatten(0, 1), targets[:, 5:9].flatten())
    assert torch.allclose(masked, ignored) and torch.allclose(masked, manual, atol=1e-6)


def test_causal_future_token_does_not_change_past_logits() -> None:
    model = tiny_model()
    idx = torch.randint(0, 97, (1, 20))
    changed = idx.clone()
    changed[0, 12] = (idx[0, 12] + 1) % 97
    a, _ = model(idx)
    b, _ = model(changed)
    assert torch.allclose(a[0, :12], b[0, :12], atol=1e-6)
    assert not torch.allclose(a[0, 12:], b[0, 12:], atol=1e-4)


def test_chunked_kv_cache_matches_full_forward() -> None:
    model = tiny_model()
    idx = torch.randint(0, 97, (2, 24))
    full, _ = model(idx)
    cache = KVCache(model.config.n_layer, 24)
    # a prefill chunk, one decode step, then a chunk on top of a non-empty cache (explicit mask path)
    parts = [model(idx[:, a:b], cache=cache)[0] for a, b in ((0, 10), (10, 11), (11, 24))]
    assert cache.pos == 24
    assert torch.allclose(full, torch.cat(parts, dim=1), atol=1e-5)


@pytest.mark.parametrize("tie", [True, False])
def test_kv_cache_greedy_equals_no_cache_greedy(tie: bool) -> None:
    model = tiny_model(seed=1, tie_embeddings=tie)
    prompt = [1, 5, 17, 42, 8]
    with_cache = model.generate(prompt, 40, temperature=0.0, use_cache=True)
    without = model.generate(prompt, 40, temperature=0.0, use_cache=False)
    assert len(with_cache) == 40 and with_cache == without


def test_generation_past_training_length_and_stop_ids() -> None:
    model = tiny_model()
    out = model.generate([1] * 30, 20, temperature=0.0)  # 50 positions > seq_len 32: RoPE tables grow
    assert len(out) == 20
    stop = out[3]
    assert model.generate([1] * 30, 20, temperature=0.0, stop_ids={stop})[-1] == stop


def test_sampling_is_seeded_and_filters() -> None:
    logits = torch.tensor([0.0, 3.0, 1.0, 2.5])
    assert sample_next(logits, 0.0, None, None, None) == 1
    assert sample_next(logits, 1.0, 1, None, torch.Generator().manual_seed(0)) == 1  # top-k 1 = argmax
    assert sample_next(logits, 1.0, None, 1e-6, torch.Generator().manual_seed(0)) == 1  # tiny nucleus = argmax
    draws = [sample_next(logits, 1.0, 2, None, torch.Generator().manual_seed(s)) for s in range(40)]
    assert set(draws) == {1, 3}
    model = tiny_model()
    a = model.generate([1, 2, 3], 15, 1.0, 50, 0.95, generator=torch.Generator().manual_seed(7))
    b = model.generate([1, 2, 3], 15, 1.0, 50, 0.95, generator=torch.Generator().manual_seed(7))
    assert a == b


def test_param_count_counts_tied_weights_once() -> None:
    tied, untied = tiny_model(tie_embeddings=True), tiny_model(tie_embeddings=False)
    assert count_params(untied) - count_params(tied) == 97 * 64
    assert count_params(tied, exclude_embeddings=True) == count_params(tied) - 97 * 64
    cfg = tied.config
    per_layer = 2 * 64 * 64 + 2 * 64 * 32 + 3 * 64 * cfg.mlp_hidden + 2 * 64
    assert count_params(tied) == 97 * 64 + 2 * per_layer + 64


# --- checkpoints --------------------------------------------------------------------------------


@pytest.mark.parametrize("tie", [True, False])
def test_checkpoint_roundtrip(tmp_path: Path, tie: bool) -> None:
    model = tiny_model(tie_embeddings=tie)
    checkpoint.save_model(tmp_path, model, PretrainConfig(steps=7))
    assert ("lm_head.weight" in load_file(str(tmp_path / "model.safetensors"))) == (not tie)
    assert json.loads((tmp_path / "train_config.json").read_text())["steps"] == 7
    loaded = checkpoint.load_model(tmp_path).eval()
    assert loaded.config == model.config
    if tie:
        assert loaded.lm_head.weight is loaded.tok_emb.weight
    idx = torch.randint(0, 97, (2, 10))
    assert torch.equal(model(idx)[0], loaded(idx)[0])


def test_checkpoint_rejects_mismatched_weights(tmp_path: Path) -> None:
    checkpoint.save_model(tmp_path, tiny_model())
    (tmp_path / "model_config.json").write_text(tiny_config(n_layer=3).model_dump_json())
    with pytest.raises(ValueError, match="does not match"):
        checkpoint.load_model(tmp_path)
    with pytest.raises(FileNotFoundError):
        checkpoint.load_model(tmp_path / "nope")


def test_optimizer_state_roundtrip_weights_only(tmp_path: Path) -> None:
    model = tiny_model()
    opt = make_adamw(model, 1e-3, 0.1, torch.device("cpu"))
    model(torch.randint(0, 97, (2, 8)), torch.randint(0, 97, (2, 8)))[1].backward()
    opt.step()
    checkpoint.save_optimizer(tmp_path / "opt.pt", opt, {"step": 1, "loader": {"epoch": 0, "pos": 4}})
    opt2 = make_adamw(model, 1e-3, 0.1, torch.device("cpu"))
    extra = checkpoint.load_optimizer(tmp_path / "opt.pt", opt2)
    assert extra["loader"]["pos"] == 4
    s1, s2 = opt.state_dict()["state"], opt2.state_dict()["state"]
    assert all(torch.equal(s1[k]["exp_avg"], s2[k]["exp_avg"]) for k in s1)


# --- token shards and the loader ----------------------------------------------------------------


def write_shards(root: Path, docs: dict[str, list[list[list[int]]]], dtype: str = "uint16") -> Path:
    """Write `docs[split][shard] = list of documents (token lists without BOS)` in the contract layout."""
    root.mkdir(parents=True, exist_ok=True)
    splits = {}
    for split, shards in docs.items():
        files, tokens, n_docs = [], 0, 0
        for i, shard in enumerate(shards):
            ids: list[int] = []
            starts = []
            for d in shard:
                starts.append(len(ids))
                ids += [1, *d]
            name = f"{split}-{i:05d}.bin"
            np.asarray(ids, dtype=dtype).tofile(root / name)
            np.save(root / f"{split}-{i:05d}.idx.npy", np.asarray(starts, dtype=np.int64))
            files.append(name)
            tokens += len(ids)
            n_docs += len(shard)
        splits[split] = {"files": files, "tokens": tokens, "docs": n_docs, "bytes": 3 * (tokens - n_docs)}
    meta = {"dtype": dtype, "vocab_size": 1000, "bos_id": 1, "eos_id": 2, "splits": splits}
    (root / "meta.json").write_text(json.dumps(meta))
    return root


def test_window_starts_tile_long_documents() -> None:
    # docs at 0 (len 3), 3 (len 10), 13 (len 2); 15 tokens; seq_len 4 -> windows need 5 tokens.
    starts = window_starts(np.array([0, 3, 13]), 15, 4)
    assert starts.tolist() == [0, 3, 7]  # 11 and 13 would run past the end


def test_loader_batches_are_shifted_bos_aligned_and_cover_an_epoch(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    shard = [list(rng.integers(10, 900, size=n)) for n in (5, 40, 7, 12, 30, 3, 25)]
    shard2 = [list(rng.integers(10, 900, size=n)) for n in (25, 3, 30, 12, 7, 40, 5)]
    root = write_shards(tmp_path / "t", {"train": [shard, shard2], "val": [shard]}, dtype="uint32")
    loader = BatchLoader(root, "train", batch_size=3, seq_len=8, seed=1)
    seen = []
    for _ in range(-(-len(loader) // 3)):
        x, y = loader.next_batch()
        assert x.shape == y.shape == (3, 8) and x.dtype == torch.long
        assert torch.equal(x[:, 1:], y[:, :-1])
        seen += [tuple(r) for r in x.tolist()]
    # One epoch visits every window once: every document start appears as a BOS-led window.
    n_docs = 2 * len(shard)
    assert sum(1 for r in seen[: len(loader)] if r[0] == 1) >= n_docs - 2  # tail docs may not fit a window
    assert len(set(seen[: len(loader)])) == len(loader)


def test_loader_is_deterministic_and_resumable(tmp_path: Path) -> None:
    shard = [list(range(10, 10 + n)) for n in (9, 30, 4, 17, 22)]
    root = write_shards(tmp_path / "t", {"train": [shard], "val": [shard]})
    a = BatchLoader(root, "train", 4, 6, seed=3)
    b = BatchLoader(root, "train", 4, 6, seed=3)
    for _ in range(5):
        assert torch.equal(a.next_batch()[0], b.next_batch()[0])
    state = json.loads(json.dumps(a.state_dict()))  # must survive JSON
    expected = [a.next_batch()[0] for _ in range(6)]  # crosses an epoch boundary
    c = BatchLoader(root, "train", 4, 6, seed=99)
    c.load_state_dict(state)
    assert all(torch.equal(e, c.next_batch()[0]) for e in expected)
    other = BatchLoader(root, "train", 4, 6, seed=4)
    assert not all(torch.equal(e, other.next_batch()[0]) for e in expected[:3])


def test_loader_errors_name_the_fix(tmp_path: Path) -> None:
    root = write_shards(tmp_path / "t", {"train": [[[5, 6, 7]]], "val": [[[5]]]})
    with pytest.raises(ValueError, match="lower seq_len"):
        BatchLoader(root, "train", 2, 16)
    with pytest.raises(ValueError, match="not in"):
        BatchLoader(root, "test", 2, 2)
    with pytest.raises(FileNotFoundError, match="tokens stage"):
        BatchLoader(tmp_path / "missing", "train", 2, 2)


# --- schedule -----------------------------------------------------------------------------------


def test_lr_schedule_warmup_then_cosine_to_floor() -> None:
    lrs = [lr_at(s, 100, 10, 1.0, 0.1) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:]))
    assert lrs[-1] == pytest.approx(0.1, abs=1e-3)
    assert lr_at(0, 10, 0, 2.0, 0.0) == pytest.approx(2.0)


def test_lr_schedule_wsd_holds_peak_then_decays_linearly() -> None:
    lrs = [lr_at(s, 100, 10, 1.0, 0.1, schedule="wsd", decay_frac=0.2) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(lr == 1.0 for lr in lrs[9:80])  # stable phase at the peak
    decay = lrs[80:]
    assert all(a > b for a, b in zip(decay, decay[1:]))  # strictly falling over the last 20% ...
    assert decay[-1] == pytest.approx(0.1)  # ... to the floor at the last step
    assert decay[0] - decay[1] == pytest.approx(decay[-2] - decay[-1])  # linearly


def test_model_presets_param_counts_match_the_documented_table() -> None:
    """The table in model/config.py's docstring is computed, not guessed: rebuild each preset on the meta
    device (no memory) at a 32,768 vocabulary and check the documented totals (in millions)."""
    from model.config import MODEL_PRESETS

    documented = {"smoke": 4.6, "d6": 22.3, "d12": 103.0, "d20": 405.7, "d28": 1051.1}
    assert set(MODEL_PRESETS) == set(documented)
    for name, depth in MODEL_PRESETS.items():
        with torch.device("meta"):
            model = GPT(GPTConfig.from_depth(depth, 32768, 2048))
        assert round(count_params(model) / 1e6, 1) == documented[name], name
        assert model.config.n_kv_head * 2 == model.config.n_head or model.config.n_head == 1
