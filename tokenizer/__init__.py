"""Train a sentencepiece BPE tokenizer, load it, and encode corpora into token shards.

Public API (the layouts are fixed in docs/CONTRACTS.md):

* `load(path) -> Tokenizer`: `encode`, `encode_batch`, `decode`, `vocab_size`, `bos_id`, `eos_id`,
  `pad_id`, `special_tokens`.
* `train_tokenizer(parquet_files, out_dir, cfg)` and `encode_corpus(split_files, tokenizer_dir, out_dir, cfg)`.
* `export_hf(tokenizer_dir)`: the Hugging Face transformers directory `tokenizer_dir/hf` (written by training).
* Pipeline stages `run_tokenizer` and `run_tokens`, configured by `TokenizerConfig` and `TokensConfig`.

No Prefect here: the orchestration layer wraps these functions.
"""

from tokenizer.config import TokenizerConfig, TokensConfig
from tokenizer.hf import export_hf
from tokenizer.shards import encode_corpus
from tokenizer.stages import run_tokenizer, run_tokens
from tokenizer.tok import SPECIAL_TOKENS, Tokenizer, load
from tokenizer.train import train_tokenizer

__all__ = [
    "SPECIAL_TOKENS",
    "Tokenizer",
    "TokenizerConfig",
    "TokensConfig",
    "encode_corpus",
    "export_hf",
    "load",
    "run_tokenizer",
    "run_tokens",
    "train_tokenizer",
]
