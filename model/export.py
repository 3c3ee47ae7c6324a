"""Export a pretrain/SFT model directory to the Hugging Face Llama format.

Our decoder is a Llama: RMSNorm, rotary embeddings with the half-split ("rotate_half") channel pairing, SwiGLU,
grouped-query attention, no biases. So the export is a renaming of tensors plus a ``config.json``; transformers'
``LlamaForCausalLM`` then computes the same logits (tested in ``tests/test_model_export.py``).

    python -m model.export MODEL_DIR OUT_DIR        # or: lmpipe export ID --out OUT_DIR

The output directory holds ``config.json``, ``generation_config.json``, ``model.safetensors`` and, when the
model directory carries its tokenizer with a Hugging Face copy (``tokenizer/hf/``), the tokenizer files, so
``AutoModelForCausalLM.from_pretrained(OUT_DIR)`` and ``AutoTokenizer.from_pretrained(OUT_DIR)`` both work.
transformers is not needed to export, only to load.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from model.checkpoint import load_model

# Our parameter names -> Hugging Face Llama names (per layer, then global).
_LAYER_MAP = {
    "attn.wq.weight": "self_attn.q_proj.weight",
    "attn.wk.weight": "self_attn.k_proj.weight",
    "attn.wv.weight": "self_attn.v_proj.weight",
    "attn.wo.weight": "self_attn.o_proj.weight",
    "mlp.w1.weight": "mlp.gate_proj.weight",
    "mlp.w3.weight": "mlp.up_proj.weight",
    "mlp.w2.weight": "mlp.down_proj.weight",
    "attn_norm.weight": "input_layernorm.weight",
    "mlp_norm.weight": "post_attention_layernorm.weight",
}


def hf_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Our state dict under Hugging Face Llama names (tied output weights stored once, as HF expects)."""
    cfg = model.config  # type: ignore[attr-defined]
    out: dict[str, torch.Tensor] = {}
    for name, t in model.state_dict().items():
        if name.startswith("blocks."):
            _, i, rest = name.split(".", 2)
            out[f"model.layers.{i}.{_LAYER_MAP[rest]}"] = t
        elif name == "tok_emb.weight":
            out["model.embed_tokens.weight"] = t
        elif name == "norm.weight":
            out["model.norm.weight"] = t
        elif name == "lm_head.weight":
            if not cfg.tie_embeddings:
                out["lm_head.weight"] = t
        else:
            raise ValueError(f"unexpected parameter {name!r}: update model/export.py for the new architecture")
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in out.items()}


def hf_config(model: torch.nn.Module, special: dict[str, int] | None = None) -> dict:
    """A ``LlamaConfig``-compatible dict for our ``GPTConfig``."""
    cfg = model.config  # type: ignore[attr-defined]
    special = special or {"bos": 1, "eos": 2, "pad": 3}
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.n_embd,
        "intermediate_size": cfg.mlp_hidden,
        "num_hidden_layers": cfg.n_layer,
        "num_attention_heads": cfg.n_head,
        "num_key_value_heads": cfg.n_kv_head,
        "head_dim": cfg.head_dim,
        "max_position_embeddings": cfg.seq_len,
        "rms_norm_eps": cfg.norm_eps,
        "rope_theta": cfg.rope_theta,
        "rope_scaling": None,
        "hidden_act": "silu",
        "attention_bias": False,
        "mlp_bias": False,
        "tie_word_embeddings": cfg.tie_embeddings,
        "bos_token_id": special.get("bos", 1),
        "eos_token_id": special.get("eos", 2),
        "pad_token_id": special.get("pad", 3),
        "torch_dtype": "float32",
    }


def export_hf(model_dir: Path | str, out_dir: Path | str) -> Path:
    """Write the Hugging Face Llama export of ``model_dir`` into ``out_dir`` (created); returns ``out_dir``."""
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    if not (model_dir / "model.safetensors").exists():
        raise FileNotFoundError(f"{model_dir} has no model.safetensors; pass a pretrain or sft artifact directory")
    model = load_model(model_dir).float()
    special = None
    tok_dir = model_dir / "tokenizer"
    if (tok_dir / "special_tokens.json").exists():
        special = json.loads((tok_dir / "special_tokens.json").read_text())
    out_dir.mkdir(parents=True, exist_ok=True)
    config = hf_config(model, special)
    (out_dir / "config.json").write_text(json.dumps(config, indent=2))
    eos = [config["eos_token_id"]] + ([special["<|end|>"]] if special and "<|end|>" in special else [])
    (out_dir / "generation_config.json").write_text(json.dumps(
        {"bos_token_id": config["bos_token_id"], "eos_token_id": eos, "pad_token_id": config["pad_token_id"]},
        indent=2))
    save_file(hf_state_dict(model), str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    if (tok_dir / "tokenizer.model").exists():
        hf_tok = tok_dir / "hf"
        if not hf_tok.is_dir():  # a model trained before the tokenizer stage wrote hf/: convert now
            from tokenizer.hf import export_hf as export_tokenizer

            hf_tok = export_tokenizer(tok_dir, out_dir / ".hf-tokenizer")
        for f in hf_tok.iterdir():
            if f.is_file():
                shutil.copy2(f, out_dir / f.name)
        if hf_tok.parent == out_dir:
            shutil.rmtree(hf_tok)
    return out_dir


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m model.export MODEL_DIR OUT_DIR", file=sys.stderr)
        return 2
    try:
        print(export_hf(args[0], args[1]))
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
