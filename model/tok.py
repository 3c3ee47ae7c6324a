"""The model package's view of a tokenizer directory.

Loading is `tokenizer.load` (docs/CONTRACTS.md); this module only adds the `Tokenizer` protocol, the
part of the contract the model code relies on, and an error that names the fix when a model
directory lacks its tokenizer copy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol


class Tokenizer(Protocol):
    @property
    def vocab_size(self) -> int: ...

    @property
    def bos_id(self) -> int: ...

    @property
    def eos_id(self) -> int: ...

    @property
    def pad_id(self) -> int: ...

    special_tokens: dict[str, int]

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: list[int]) -> str: ...


def load_tokenizer(path: Path | str) -> Tokenizer:
    import tokenizer

    path = Path(path)
    if not (path / "tokenizer.model").is_file():
        raise FileNotFoundError(
            f"{path} is not a tokenizer directory (no tokenizer.model): pass the tokenizer stage's output, "
            "or a model directory that has its tokenizer/ copy"
        )
    return tokenizer.load(path)
