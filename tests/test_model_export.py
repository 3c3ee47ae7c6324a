"""Hugging Face Llama export: transformers' LlamaForCausalLM gives our logits (skipped without transformers)."""

from __future__ import annotations

import json

import pytest
import torch

from model.checkpoint import save_model
from model.config import GPTConfig
from model.export import export_hf, main
from model.gpt import GPT


@pytest.mark.parametrize("tie", [True, False])
def test_llama_export_matches_our_logits(tmp_path, tie):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    # depth 4: 4 query heads sharing 2 kv heads (GQA), SwiGLU hidden rounded to multiple_of.
    cfg = GPTConfig.from_depth(4, vocab_size=300, seq_len=64).model_copy(update={"tie_embeddings": tie})
    ours = GPT(cfg).eval()
    with torch.no_grad():  # random norm gains, so a wrong norm mapping cannot hide behind all-ones weights
        for name, p in ours.named_parameters():
            if name.endswith("norm.weight"):
                p.uniform_(0.5, 1.5)
    save_model(tmp_path / "model", ours)
    out = export_hf(tmp_path / "model", tmp_path / "hf")
    assert json.loads((out / "config.json").read_text())["num_key_value_heads"] == cfg.n_kv_head

    hf = transformers.LlamaForCausalLM.from_pretrained(str(out)).eval()
    ids = torch.randint(0, cfg.vocab_size, (2, 40))
    with torch.no_grad():
        ours_logits, _ = ours(ids)
        hf_logits = hf(ids).logits
    assert hf_logits.shape == ours_logits.shape
    # The target: 1e-4 absolute in fp32 (measured here: 0.0, the same kernels in the same order).
    assert float((hf_logits - ours_logits).abs().max()) <= 1e-4


def test_export_of_a_non_model_directory_is_a_clear_error(tmp_path, capsys):
    assert main([str(tmp_path), str(tmp_path / "out")]) == 2
    assert "no model.safetensors" in capsys.readouterr().err
