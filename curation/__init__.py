"""Data curation for lmpipe: raw web data (WARC/WET/JSONL/Parquet) to train/val Parquet shards.

Modules, one concept each: `documents` (Parquet schema and I/O), `readers`, `extract` (HTML -> text),
`langid`, `filters`, `dedup`, `quality`, `mix`, `config` (one frozen config per stage) and `stages`
(the `run_<stage>(inputs, out_dir, cfg) -> stats` functions that `flows/` calls). No Prefect import here.
"""
