"""Load a trained tokenizer directory and encode/decode text with it.

`load(path)` returns a `Tokenizer`, a thin wrapper over `sentencepiece.SentencePieceProcessor` that fixes
the contract of docs/CONTRACTS.md: `encode` adds no BOS/EOS, `decode` drops control ids, and
`decode(encode(s)) == s` for every Unicode string without lone surrogates.

Sentencepiece alone is exact for every such string except one character: a literal U+2581 ("▁"), which
sentencepiece uses as its space marker and therefore decodes to a space. The wrapper encodes that character
as its three UTF-8 byte-fallback tokens (<0xE2><0x96><0x81>); sentencepiece decodes byte tokens verbatim,
so the round trip is exact. (This needs a model trained with byte_fallback, the default.)

Speed: sentencepiece's BPE encoder runs one merge queue over the whole string, and long strings cost more per
byte (the bench's held-out documents encode ~9% faster line by line). A piece can only join symbols across a
newline if the vocabulary holds a piece with a newline followed by some other character. `train.py` never
lets the trainer see one (a training sentence ends with its newlines and, in the default prefix-space mode, a
piece cannot end with the indentation spaces that follow them), so when the vocabulary confirms it (checked at
load: `Tokenizer.encodes_by_line`) texts are encoded line by line in one batched call. BPE merges only form
vocabulary pieces, so this gives exactly the ids of encoding each text whole (tests/test_tokenizer.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from itertools import chain, islice
from pathlib import Path

import sentencepiece as spm

MODEL_FILE = "tokenizer.model"
VOCAB_FILE = "tokenizer.vocab"
SPECIAL_TOKENS_FILE = "special_tokens.json"

#: Chat role markers, sentencepiece control symbols in this order right after the four meta pieces.
ROLE_TOKENS: tuple[str, ...] = ("<|system|>", "<|user|>", "<|assistant|>", "<|end|>")

#: The fixed special-token layout of every tokenizer directory (CONTRACTS.md).
SPECIAL_TOKENS: dict[str, int] = {
    "unk": 0,
    "bos": 1,
    "eos": 2,
    "pad": 3,
    **{name: 4 + i for i, name in enumerate(ROLE_TOKENS)},
}

_SPACE_MARK = "\u2581"

#: A line with all the newlines that follow it, or a last line without one: the units `encode` may encode
#: separately when no vocabulary piece holds a newline followed by anything else.
LINE = re.compile(r"[^\n]*\n+|[^\n]+")
# A piece that would cross the end of a LINE match.
_CROSSES_LINE_END = re.compile(r"\n[^\n]")


class Tokenizer:
    """A trained sentencepiece BPE with the project's special tokens."""

    def __init__(self, model_file: Path) -> None:
        self.model_file = Path(model_file)
        self._sp = spm.SentencePieceProcessor(model_file=str(self.model_file))
        self.special_tokens: dict[str, int] = _read_special_tokens(self._sp, self.model_file.parent)
        # Byte-fallback ids of the UTF-8 bytes of U+2581 (see module docstring); None without byte fallback.
        byte_ids = [self._sp.piece_to_id(f"<0x{b:02X}>") for b in _SPACE_MARK.encode("utf-8")]
        self._space_mark_ids = byte_ids if all(self._sp.is_byte(i) for i in byte_ids) else None
        self.encodes_by_line: bool = not any(
            _CROSSES_LINE_END.search(self._sp.id_to_piece(i))
            for i in range(self._sp.get_piece_size())
            if not (self._sp.is_control(i) or self._sp.is_byte(i) or self._sp.is_unknown(i))
        )

    @property
    def vocab_size(self) -> int:
        return self._sp.get_piece_size()

    @property
    def unk_id(self) -> int:
        return self.special_tokens["unk"]

    @property
    def bos_id(self) -> int:
        return self.special_tokens["bos"]

    @property
    def eos_id(self) -> int:
        return self.special_tokens["eos"]

    @property
    def pad_id(self) -> int:
        return self.special_tokens["pad"]

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`, without BOS/EOS. Text that spells a role marker is encoded as plain text."""
        if _SPACE_MARK not in text or self._space_mark_ids is None:
            return self._encode_plain(text)
        ids: list[int] = []
        for i, part in enumerate(text.split(_SPACE_MARK)):
            if i:
                ids.extend(self._space_mark_ids)
            if part:
                ids.extend(self._encode_plain(part))
        return ids

    def encode_batch(self, texts: Sequence[str], num_threads: int = 1) -> list[list[int]]:
        """`[encode(t) for t in texts]`, looping in C++ (with `num_threads` threads, the GIL released)."""
        if self.encodes_by_line:
            lines_per_text = [LINE.findall(text) for text in texts]
            encoded = iter(self._sp.encode(list(chain.from_iterable(lines_per_text)), num_threads=num_threads))
            out = [
                next(encoded) if len(lines) == 1 else list(chain.from_iterable(islice(encoded, len(lines))))
                for lines in lines_per_text
            ]
        else:
            out = self._sp.encode(list(texts), num_threads=num_threads)
        for i, text in enumerate(texts):
            if _SPACE_MARK in text:  # rare: redo through the exact path
                out[i] = self.encode(text)
        return out

    def _encode_plain(self, text: str) -> list[int]:
        """Sentencepiece's ids of `text` (no literal U+2581 in it), line by line where that is exact."""
        if self.encodes_by_line and "\n" in text:
            lines = LINE.findall(text)
            if len(lines) > 1:
                return list(chain.from_iterable(self._sp.encode(lines)))
        return self._sp.encode(text)

    def decode(self, ids: Iterable[int]) -> str:
        """Text of `ids`; control ids (BOS, EOS, PAD, role markers) are dropped, <unk> becomes " ⁇ "."""
        return self._sp.decode([int(i) for i in ids])

    def id_to_piece(self, token_id: int) -> str:
        """The vocabulary piece of `token_id` (spaces shown as U+2581), for inspection."""
        return self._sp.id_to_piece(int(token_id))

    def is_control(self, token_id: int) -> bool:
        return self._sp.is_control(int(token_id))

    def __repr__(self) -> str:
        return f"Tokenizer({str(self.model_file)!r}, vocab_size={self.vocab_size})"


def load(path: str | Path) -> Tokenizer:
    """Load a tokenizer directory (or its `tokenizer.model` file)."""
    path = Path(path)
    model_file = path / MODEL_FILE if path.is_dir() else path
    if not model_file.is_file():
        raise FileNotFoundError(f"no {MODEL_FILE} at {path}; run the tokenizer stage first")
    return Tokenizer(model_file)


def _read_special_tokens(sp: spm.SentencePieceProcessor, directory: Path) -> dict[str, int]:
    """The special-token map, checked against the model so a mismatched directory fails at load time."""
    from_model = {
        "unk": sp.unk_id(),
        "bos": sp.bos_id(),
        "eos": sp.eos_id(),
        "pad": sp.pad_id(),
        **{name: sp.piece_to_id(name) for name in ROLE_TOKENS},
    }
    json_file = directory / SPECIAL_TOKENS_FILE
    if json_file.is_file():
        declared = json.loads(json_file.read_text(encoding="utf-8"))
        if declared != from_model:
            raise ValueError(f"{json_file} disagrees with {directory / MODEL_FILE}; retrain the tokenizer")
    for name in ROLE_TOKENS:
        if not sp.is_control(from_model[name]):
            raise ValueError(f"{name} is not a control symbol in {directory}; retrain the tokenizer")
    return from_model
