"""Loading a tokenizer directory for the model package.

The real loader is `tokenizer.load(path)` (docs/CONTRACTS.md). While that package is being
written, this module falls back to a minimal sentencepiece wrapper with the same surface
(`encode`, `decode`, `vocab_size`, `bos_id`, `eos_id`, `pad_id`, `special_tokens`), so the model code
depends only on the contract, never on the fallback. Delete the fallback once `tokenizer.load` lands.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol


class Tokenizer(Protocol):
    vocab_size: int
    bos_id: int
    eos_id: int
    pad_id: int
    special_tokens: dict[str, int]

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: list[int]) -> str: ...


class _SentencePieceTokenizer:
    def __init__(self, path: Path) -> None:
        import sentencepiece as spm

        self._sp = spm.SentencePieceProcessor(model_file=str(path / "tokenizer.model"))
        self.special_tokens: dict[str, int] = json.loads((path / "special_tokens.json").read_text())
        self.vocab_size = int(self._sp.get_piece_size())
        self.bos_id = self.special_tokens["bos"]
        self.eos_id = self.special_tokens["eos"]
        self.pad_id = self.special_tokens["pad"]

    def encode(self, text: str) -> list[int]:
        return list(self._sp.encode(text, out_type=int))

    def decode(self, ids: list[int]) -> str:
        return str(self._sp.decode(list(ids)))  # sentencepiece drops control ids itself


def load_tokenizer(path: Path | str) -> Tokenizer:
    path = Path(path)
    if not (path / "tokenizer.model").is_file() or not (path / "special_tokens.json").is_file():
        raise FileNotFoundError(
            f"{path} is not a tokenizer directory (needs tokenizer.model and special_tokens.json): "
            "pass the tokenizer stage's output, or a model directory's tokenizer/"
        )
    try:
        from tokenizer import load  # type: ignore[attr-defined]
    except ImportError:
        return _SentencePieceTokenizer(path)
    return load(path)  # type: ignore[no-any-return]
