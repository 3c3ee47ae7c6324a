"""Text generation from a model directory.

`generate(model_dir, prompt, ...)` loads the weights and the directory's own tokenizer, and samples
with a KV cache (temperature, top-k, nucleus). With chat=True the prompt becomes one user turn of
the chat template and generation stops at `<|end|>`; with chat=False it is continued as raw text.
Either way a BOS or EOS also stops it: BOS means "a new document starts", which is never part of
an answer. Control ids are dropped from the returned text.

CLI: python -m model.generate --model DIR --prompt TEXT [--max-new-tokens N] [--raw]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from model import checkpoint
from model.chat import END, encode_prompt
from model.runtime import resolve_device
from model.tok import load_tokenizer


def generate(
    model_dir: Path | str,
    prompt: str,
    max_new_tokens: int = 64,
    temperature: float = 0.8,
    top_k: int = 50,
    top_p: float = 0.95,
    seed: int = 0,
    chat: bool = True,
) -> str:
    """Sample a continuation of `prompt` (or an assistant reply to it when chat=True)."""
    model_dir = Path(model_dir)
    tok = load_tokenizer(model_dir / checkpoint.TOKENIZER_DIR)
    device = resolve_device("auto")
    model = checkpoint.load_model(model_dir, device).eval()
    if chat:
        ids = encode_prompt(tok, [{"role": "user", "content": prompt}])
        stops = {tok.special_tokens[END], tok.eos_id, tok.bos_id}
    else:
        ids = [tok.bos_id, *tok.encode(prompt)]
        stops = {tok.eos_id, tok.bos_id}
    generator = torch.Generator().manual_seed(seed)
    out = model.generate(
        ids, max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p, stop_ids=stops, generator=generator
    )
    if out and out[-1] in stops:
        out = out[:-1]
    return tok.decode(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m model.generate", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, type=Path, help="model directory (pretrain or sft output)")
    p.add_argument("--prompt", required=True)
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--raw", action="store_true", help="continue the prompt as text instead of chatting")
    args = p.parse_args(argv)
    try:
        text = generate(
            args.model, args.prompt, args.max_new_tokens, args.temperature, seed=args.seed, chat=not args.raw
        )
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
