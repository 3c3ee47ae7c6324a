"""Export a trained tokenizer directory as a Hugging Face transformers tokenizer directory.

`export_hf(tokenizer_dir)` writes `tokenizer_dir/hf/`: a copy of `tokenizer.model`, `tokenizer_config.json`
(LlamaTokenizer, no dummy prefix, BOS added, the project's special tokens and chat template) and
`special_tokens_map.json`. Nothing here imports transformers; loading needs `pip install -e .[hf]`
(transformers, plus sentencepiece and protobuf to convert `tokenizer.model`):

    from transformers import AutoTokenizer
    hf = AutoTokenizer.from_pretrained("<tokenizer artifact>/hf")
    hf(text, add_special_tokens=False).input_ids == tokenizer.load("<tokenizer artifact>").encode(text)
    hf(text).input_ids == [bos_id] + ...          # what the token shards hold per document

The ids agree with `Tokenizer.encode` (tests/test_tokenizer_hf.py) except in two places where transformers
works on strings: text spelling a special token ("<|user|>", "<s>") becomes that special id unless the call
passes `split_special_tokens=True`, and a literal U+2581 ("▁") is read as a space marker (our wrapper
byte-encodes it so that it round-trips).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tokenizer.tok import MODEL_FILE, ROLE_TOKENS, load

HF_DIR = "hf"

#: The chat template of model/chat.py, over strings: [bos] <|role|> content <|end|> ... [<|assistant|>]
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<|{{ message['role'] }}|>{{ message['content'] }}<|end|>"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def export_hf(tokenizer_dir: str | Path, out_dir: str | Path | None = None) -> Path:
    """Write the transformers directory of the tokenizer in `tokenizer_dir` (default `tokenizer_dir/hf`)."""
    tokenizer_dir = Path(tokenizer_dir)
    tok = load(tokenizer_dir)  # checks the directory and its special tokens
    out = Path(out_dir) if out_dir is not None else tokenizer_dir / HF_DIR
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(tok.model_file, out / MODEL_FILE)
    names = {name: tok.id_to_piece(tok.special_tokens[name]) for name in ("unk", "bos", "eos", "pad")}
    special_map = {
        "unk_token": names["unk"],
        "bos_token": names["bos"],
        "eos_token": names["eos"],
        "pad_token": names["pad"],
        "additional_special_tokens": list(ROLE_TOKENS),
    }
    config = {
        "tokenizer_class": "LlamaTokenizer",
        **special_map,
        # Our model has no dummy prefix: "Hello" stays "Hello", a leading space stays a space.
        "add_prefix_space": False,
        "legacy": False,
        "add_bos_token": True,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": 1_000_000_000,
        "chat_template": CHAT_TEMPLATE,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    (out / "special_tokens_map.json").write_text(json.dumps(special_map, indent=2) + "\n", encoding="utf-8")
    return out
