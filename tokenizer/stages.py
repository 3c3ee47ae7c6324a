"""The two pipeline stages of this package, in the `run_<stage>(inputs, out_dir, cfg) -> stats` form.

`inputs` are the mix artifact's Parquet files (`train-00000.parquet`, `val-00000.parquet`, …); a directory
stands for the `*.parquet` files directly inside it. The split of a file is its name's prefix.
"""

from __future__ import annotations

from pathlib import Path

from tokenizer.config import TokenizerConfig, TokensConfig
from tokenizer.shards import encode_corpus
from tokenizer.tok import MODEL_FILE
from tokenizer.train import train_tokenizer

SPLITS = ("train", "val")


def run_tokenizer(inputs: list[str], out_dir: Path, cfg: TokenizerConfig) -> dict:
    """Train the tokenizer on the `train-*` files among `inputs` and write it to `out_dir`."""
    files = _resolve(inputs)
    train = [f for f in files if Path(f).name.startswith("train-")]
    if not train:
        raise FileNotFoundError(
            f"no train-*.parquet among {len(files)} input file(s); pass the mix artifact's files (run mix first)"
        )
    stats = train_tokenizer(train, Path(out_dir), cfg)
    return {"input_files": len(train), **stats}


def run_tokens(inputs: list[str], out_dir: Path, cfg: TokensConfig, tokenizer_dir: Path) -> dict:
    """Encode the `train-*`/`val-*` files among `inputs` with the tokenizer in `tokenizer_dir` into shards."""
    if not (Path(tokenizer_dir) / MODEL_FILE).is_file():
        raise FileNotFoundError(f"no {MODEL_FILE} in {tokenizer_dir}; run the tokenizer stage first")
    split_files: dict[str, list[str]] = {}
    for path in _resolve(inputs):
        split = Path(path).name.split("-", 1)[0]
        if split not in SPLITS or "-" not in Path(path).name:
            raise ValueError(f"cannot tell the split of {path}: its name must start with 'train-' or 'val-'")
        split_files.setdefault(split, []).append(path)
    if "train" not in split_files:
        raise FileNotFoundError("no train-*.parquet among the inputs; pass the mix artifact's files (run mix first)")
    return encode_corpus(split_files, Path(tokenizer_dir), Path(out_dir), cfg)


def _resolve(inputs: list[str]) -> list[str]:
    """Input paths as sorted Parquet files; a missing path fails with a one-line message."""
    files: list[str] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files += sorted(str(p) for p in path.glob("*.parquet"))
        elif path.is_file():
            files.append(str(path))
        else:
            raise FileNotFoundError(f"input {path} does not exist; pass the files of an existing mix artifact")
    if not files:
        raise FileNotFoundError("no Parquet input files; pass the mix artifact's files (run mix first)")
    return sorted(set(files))
