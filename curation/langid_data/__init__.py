"""Data files of `curation.langid`: `en_words.json` (English wordlist) and the script that builds it."""
