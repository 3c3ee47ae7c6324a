"""Configs of the two tokenizer stages: training the BPE (`TokenizerConfig`) and encoding shards (`TokensConfig`).

Both are frozen Pydantic models (unknown keys fail) so a resolved config can be hashed into an artifact id.
The field descriptions double as CLI help.

Whitespace and newlines, as configured by the defaults (sentencepiece 0.2.3):

* Normalisation is `identity` and `add_dummy_prefix` is off (fixed in `train.py`), so the encoder never
  rewrites text: a space becomes the piece marker U+2581, every other character is itself, and
  `decode(encode(s)) == s` holds for any string (the wrapper in `tok.py` handles a literal U+2581).
* Spaces are piece prefixes ("▁in", as in LLaMA). With digits split a prefix space cannot join a number, so
  LLaMA-style vocabularies spend a bare "▁" token before every number (" 1999" is "▁" "1" "9" "9" "9"; ~2% of
  WikiText-2 tokens). `space_digit_pieces` adds the ten pieces "▁0".."▁9" (" 1999" is "▁1" "9"
  "9" "9"): still one digit per token, no token with two digits. Measured at 32K (bench corpus, split-half
  check in the tokenizer entries of docs/LOG.md): +2.3% English bytes/token on WikiText-2, +1.2% raw
  Wikipedia, +1.0% C4.
  `treat_whitespace_as_suffix=True` ("in▁" "1" "9" "9" "9") removes the bare space too, but costs 1.7% on
  C4: English words are more often preceded than followed by a space.
* `digit_suffix_chars` joins a number's last digit to the letter after it, for the 10 letters (Han characters
  count) that most often follow a digit in the training sample (bench corpus: 年 月 日 元 点 个 分 ...): "2024年"
  is "2" "0" "2" "4年". Never punctuation or symbols, so "10.5%", "1,000" and "2024-11" stay one bare digit per
  token. CMRC 0.995x -> 1.007x the plain HF peer; the 100 pieces take the slots of the last 100 learned merges.
  Set 0 and `space_digit_pieces=False` for LLaMA's strict policy (every digit a piece of its own).
* `space_punct_pieces` makes "▁" + every ASCII punctuation character a piece (7 were missing at 32K: "▁@",
  "▁)", "▁?", "▁]", "▁^", "▁}", "▁~"), as a byte-level BPE's pre-tokenizer does: +1.2% on WikiText-2
  (" @-@ ", " @,@ ", " ) "), ±0% elsewhere. Only for characters that are pieces themselves (both halves of an
  added piece must be pieces, or the Hugging Face export, which builds merges from pairs of pieces, would
  encode differently); a character rare enough to be byte-encoded ("`" in the small demo corpus) gets none.
* `remove_extra_whitespaces=False` keeps runs of spaces, leading and trailing spaces;
  `allow_whitespace_only_pieces=True` lets BPE learn pieces made only of spaces (code indentation).
* Newlines: sentencepiece reads one sentence per line, so training text is fed line by line through an
  iterator with each line's newline(s) kept at its end, together with the spaces that indent the next line
  (`train.LINE`; against the next line owning them: +1.2% WikiText-2, +2.4% Chinese markdown with code).
  Sentencepiece does not treat "\\n" as whitespace, so it is an ordinary character: it is always in the
  alphabet (`required_chars`) and BPE may merge it with preceding newlines and punctuation ("\\n\\n", ".\\n"),
  never with what follows, which lets the encoder work line by line (tok.py). (Whole multi-line chunks as
  sentences were no better and gave 539 pieces like ",\\nAnd▁" from verse line breaks.)
* Tabs: sentencepiece's trainer uses "\\t" internally as a piece boundary and never puts it in the
  vocabulary, so a tab is always the single byte-fallback token <0x09>. Exact, but never merged.

Compression defaults, measured by `bench/tokenizer.py` at 32K on the shared zh+en corpus (held-out
WikiText-2 / CMRC; numbers in docs/LOG.md and bench/RESULTS.md): the pre-splitting options only constrain *training*
(sentencepiece's encoder just applies the learned merges), and each one costs compression:

* `split_digits=True` (LLaMA) spends one token per digit: -4% English bytes/token and -5% Chinese
  characters/token (years, dates); digits are 6% of our WikiText-2 tokens and 8% of CMRC's. On by default all the same:
  the tokenizer targets ask for it, and digit-by-digit numbers are what small models learn arithmetic from.
* `split_by_whitespace=True` forbids pieces spanning words (" of the", " , and"): -5% English.
* `split_by_unicode_script=True` (sentencepiece's default) forbids pieces joining Han characters with
  punctuation, digits or Latin ("。\\n", "，而", "8年"): -6% modern and -10% Classical Chinese.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class TokenizerConfig(BaseModel):
    """How to train the sentencepiece BPE tokenizer on the mix's training documents."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    vocab_size: int = Field(
        4096, ge=512, description="Total vocabulary size, special and byte-fallback pieces included (demo: 4096)."
    )
    model_type: Literal["bpe"] = Field("bpe", description="Sentencepiece model type; only BPE is supported.")
    input_sentence_size: int = Field(
        200_000,
        ge=1,
        description="At most this many training sentences (text lines) are sampled, by seeded reservoir sampling.",
    )
    dedup_lines: bool = Field(
        True,
        description="Count a line once in the training sample when it repeats (speaker names, code fences, "
        "headers: 11.7% of the bench corpus' lines). At 32K, held out: +0.7-1.3% English, +0.1% Chinese, "
        "-1.2% on Chinese markdown with code (its repeated code lines recur in held-out markdown).",
    )
    max_sentence_length: int = Field(
        4192,
        ge=64,
        description="Lines longer than this many UTF-8 bytes are cut into pieces before training "
        "(sentencepiece silently skips longer sentences).",
    )
    character_coverage: float = Field(
        0.998,
        ge=0.98,
        le=1.0,
        description="Fraction of training characters that must be single vocabulary pieces; "
        "rarer characters are encoded as UTF-8 byte tokens.",
    )
    max_alphabet_fraction: float = Field(
        0.5,
        gt=0.0,
        le=1.0,
        description="At most this fraction of the learnable vocabulary may be single characters; "
        "character_coverage is lowered to fit (Chinese needs ~4,000 characters for 0.9995, more than a "
        "4,096 vocabulary holds). The value used is reported as effective_character_coverage.",
    )
    byte_fallback: bool = Field(
        True, description="Encode characters outside the vocabulary as UTF-8 byte tokens instead of <unk>."
    )
    split_digits: bool = Field(
        True, description="Every digit is its own token (LLaMA-style, so numbers and arithmetic tokenise "
        "uniformly; costs ~5% compression, see above: --set tokenizer.split_digits=false to trade it back)."
    )
    split_by_whitespace: bool = Field(
        False, description="True: pieces never span a space (a space may only start a piece)."
    )
    split_by_unicode_script: bool = Field(
        False, description="True: pieces never mix scripts (Han with punctuation, digits or Latin)."
    )
    space_digit_pieces: bool = Field(
        True, description="With split_digits, add the pieces \"▁0\"..\"▁9\" so a space joins the digit after it "
        "(one digit per token still; saves the bare space token before every number, see above)."
    )
    space_punct_pieces: bool = Field(
        True, description="Make \"▁\" + every ASCII punctuation character a piece (\" @\", \" )\": a space before "
        "punctuation is otherwise a token of its own; the missing ones replace the last learned merges; only for "
        "characters that are pieces themselves)."
    )
    digit_suffix_chars: int = Field(
        10, ge=0, le=100, description="With split_digits, add digit+c pieces (\"4年\") for this many letters c "
        "(no punctuation/symbols) most often following a digit in the training sample (one digit per token still; "
        "they replace the last learned merges)."
    )
    treat_whitespace_as_suffix: bool = Field(
        False, description="A space ends a piece (\"in▁\") rather than starting one (\"▁in\"); costs ~2% on "
        "web English (see above), and pieces then join a newline to the next line's indentation, so `encode` "
        "cannot work line by line."
    )
    max_sentencepiece_length: int = Field(16, ge=1, le=64, description="Longest piece, in characters.")
    normalization: Literal["identity"] = Field(
        "identity", description="Sentencepiece normalisation rule; identity keeps decode(encode(s)) == s."
    )
    remove_extra_whitespaces: bool = Field(
        False, description="Collapse runs of spaces and strip ends (breaks exact round trips; keep False)."
    )
    allow_whitespace_only_pieces: bool = Field(
        True, description="Allow pieces made only of spaces, e.g. four-space indentation."
    )
    num_threads: int = Field(
        2, ge=1, description="Sentencepiece trainer threads (the learned pieces do not depend on it)."
    )
    seed: int = Field(0, description="Seed of the sentence sampling; same data and seed give the same tokenizer.")


class TokensConfig(BaseModel):
    """How to encode the mix's documents into token shards."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    num_workers: int = Field(2, ge=1, description="Worker processes encoding Parquet row groups in parallel.")
    shard_tokens: int = Field(
        100_000_000,
        ge=1,
        description="A new .bin file is started once a file would exceed this many tokens "
        "(documents never straddle files; a longer document gets a file of its own).",
    )
    batch_rows: int = Field(
        1024, ge=1, description="Rows per Parquet record batch read at a time (bounds memory per worker)."
    )
    dtype: Literal["auto", "uint16", "uint32"] = Field(
        "auto", description="Token id dtype of the shards; auto: uint16 while the vocabulary fits, else uint32."
    )
    min_docs_parallel: int = Field(
        5000,
        ge=0,
        description="Inputs with fewer documents are encoded in-process: starting workers costs about a second.",
    )
