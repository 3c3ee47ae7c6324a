"""Data files of `curation.spam`: `lexicon.json` (weighted spam vocabulary per category) and `labels.jsonl`
(hand labels of the Chinese web documents in ../shared/data that `bench/spam.py` measures on)."""
