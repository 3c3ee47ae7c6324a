"""The Hugging Face export (tokenizer/hf.py): transformers loads `hf/` from `tokenizer.model` and encodes like
`Tokenizer.encode`. Skipped when transformers (or the data of test_tokenizer.py) is missing.
"""

from __future__ import annotations

import pytest

pytest.importorskip("transformers")
pytest.importorskip("google.protobuf", reason="transformers needs protobuf to convert tokenizer.model")

from test_tokenizer import TRICKY, docs, mix_dir, tok, trained  # noqa: E402,F401  (shared module fixtures)

import transformers  # noqa: E402


@pytest.fixture(scope="module")
def hf(trained):  # noqa: F811  (fixture imported from test_tokenizer)
    return transformers.AutoTokenizer.from_pretrained(str(trained[0] / "hf"))


def test_hf_loads_with_the_special_tokens(hf, tok):  # noqa: F811  (fixture imported from test_tokenizer)
    assert len(hf) == tok.vocab_size
    assert (hf.bos_token_id, hf.eos_token_id, hf.pad_token_id, hf.unk_token_id) == (1, 2, 3, 0)
    assert hf.convert_tokens_to_ids(["<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]) == [4, 5, 6, 7]


def test_hf_encodes_like_ours(hf, tok, docs):  # noqa: F811  (fixtures imported from test_tokenizer)
    texts = [text for _, text in docs["val"]] + [t for t in TRICKY if "\u2581" not in t]
    for text in texts:
        ids = tok.encode(text)
        assert hf(text, add_special_tokens=False, split_special_tokens=True)["input_ids"] == ids, repr(text[:80])
        assert hf(text, split_special_tokens=True)["input_ids"] == [tok.bos_id, *ids]  # as in the token shards
        assert hf.decode(ids) == text


def test_hf_chat_template_matches_the_id_template(hf, tok):  # noqa: F811  (fixture imported from test_tokenizer)
    messages = [{"role": "user", "content": "你好"}, {"role": "assistant", "content": "Hi!"}]
    ids = hf.apply_chat_template(messages, tokenize=True, add_generation_prompt=False)
    ids = ids["input_ids"] if not isinstance(ids, list) else ids
    assert ids == [tok.bos_id, 5, *tok.encode("你好"), 7, 6, *tok.encode("Hi!"), 7]
