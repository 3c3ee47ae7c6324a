"""Train the project's sentencepiece BPE tokenizer on document Parquet files.

The documents are streamed, split into lines (sentencepiece's unit of training text; each line keeps its
newline(s) and the spaces that indent the next line, so newlines and indentation are learned like any other
characters, see `LINE`) and sampled by seeded reservoir sampling up to `input_sentence_size` lines, so memory
stays bounded and the same data and seed give the same `tokenizer.model`, byte for byte. A line identical to one
already in the sample is skipped (`dedup_lines`): repeated boilerplate (speaker names in plays, code fences,
headers; 11.7% of the bench corpus' lines) would otherwise buy vocabulary that held-out text does not use.
Sentencepiece then trains in its own C++ threads, in this process (no fork: safe inside a Prefect task).
With `space_digit_pieces`, ten pieces "▁0".."▁9" are appended to the trained model as lowest-priority merges.
Two more rules add pieces in the slots of the last learned merges (`_add_pieces`, vocabulary size unchanged):
`space_punct_pieces` ("▁" + every ASCII punctuation character; " @-@ " and " )" in WikiText-style text) and
`digit_suffix_chars` (a digit joined to one of the letters that most often follow a digit in the sample: "4年";
never punctuation, so "10.5%" stays "1" "0" "." "5" "%"). Every digit stays in a token of its own, and no token
holds two digits.

Output, as CONTRACTS.md fixes it: `tokenizer.model`, `tokenizer.vocab` (one `piece<TAB>score` line per id,
for humans; newline, tab, carriage return and backslash inside a piece are written as \\n, \\t, \\r, \\\\)
and `special_tokens.json`; plus `hf/`, the same tokenizer as a Hugging Face transformers directory (`hf.py`).

Memory: only the reservoir of at most `input_sentence_size` lines is held (plus sentencepiece's work on it),
so peak memory is bounded by that cap, not by the corpus size (`bench/tokenizer.py` shows it).
"""

from __future__ import annotations

import io
import json
import random
import re
import struct
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import sentencepiece as spm

from tokenizer._parquet import iter_batches, open_documents
from tokenizer.config import TokenizerConfig
from tokenizer.hf import export_hf
from tokenizer.tok import (
    MODEL_FILE,
    ROLE_TOKENS,
    SPECIAL_TOKENS,
    SPECIAL_TOKENS_FILE,
    VOCAB_FILE,
    Tokenizer,
    load,
)

#: A training sentence: a line with all the newlines that follow it and the spaces that indent the next line,
#: or a last line without a newline. The newline stays a piece boundary for the encoder (see tok.py); the
#: indentation becomes whitespace-only pieces ("\n" "▁▁▁▁") instead of gluing onto the next line's first word.
LINE = re.compile(r"[^\n]*\n+ *|[^\n]+")
# Sentencepiece never accepts a character coverage below this.
_MIN_COVERAGE = 0.98
# Sentencepiece reserves this character (U+2585) and skips training sentences that contain it.
_SP_UNK_CHAR = "\u2585"
_READ_BATCH_ROWS = 1024
_ASCII_PUNCTUATION = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
# A digit and the character after it, when that is neither whitespace, a digit nor the space marker U+2581.
_DIGIT_SUFFIX = re.compile(r"[0-9]([^0-9\s\u2581])")
_STATS_CHUNK = 4096
# Sentencepiece's message when the text has fewer distinct pieces than the vocabulary asks for.
_VOCAB_TOO_HIGH = re.compile(r"Vocabulary size (?:is )?too high.*<= *(\d+)")


def train_tokenizer(parquet_files: list[str], out_dir: Path, cfg: TokenizerConfig) -> dict:
    """Train on the `text` column of `parquet_files`, write the tokenizer directory `out_dir`, return stats."""
    started = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    sample, counts = _sample_sentences(parquet_files, cfg)
    if not sample:
        raise ValueError(f"no non-empty text in {len(parquet_files)} training file(s); check the mix output")
    texts = [text for _, text in sample]
    coverage = _effective_coverage(texts, cfg)

    train_started = time.perf_counter()
    model_proto = _train_sentencepiece(texts, cfg, coverage)
    train_seconds = time.perf_counter() - train_started

    (out_dir / MODEL_FILE).write_bytes(model_proto)
    (out_dir / SPECIAL_TOKENS_FILE).write_text(json.dumps(SPECIAL_TOKENS, indent=2) + "\n", encoding="utf-8")
    tok = load(out_dir)  # also checks the special-token layout against the model
    _write_vocab(model_proto, out_dir / VOCAB_FILE)
    export_hf(out_dir)

    languages = _compression_by_language(tok, sample, cfg.num_threads)
    return {
        "vocab_size": tok.vocab_size,
        **counts,
        "sentences_used": len(sample),
        "effective_character_coverage": coverage,
        "train_seconds": round(train_seconds, 3),
        "seconds": round(time.perf_counter() - started, 3),
        "languages": languages,
    }


def split_lines(text: str, max_bytes: int) -> Iterator[str]:
    """Training sentences of one document (`LINE` matches), each cut to at most `max_bytes` UTF-8 bytes."""
    for match in LINE.finditer(text):
        yield from _cut(match.group(0), max_bytes)


def _cut(line: str, max_bytes: int) -> list[str]:
    """`line` as pieces of at most `max_bytes` UTF-8 bytes, never cut inside a character.

    Sentencepiece silently skips a training sentence longer than its `max_sentence_length` (bytes); cutting
    keeps the text (the bench corpus' one-article-per-line Wikipedia file would otherwise be lost).
    """
    if len(line) * 4 <= max_bytes:  # cheap test first: a character is at most 4 UTF-8 bytes
        return [line]
    data = line.encode("utf-8")
    if len(data) <= max_bytes:
        return [line]
    pieces = []
    start = 0
    while start < len(data):
        end = min(start + max_bytes, len(data))
        while end < len(data) and (data[end] & 0xC0) == 0x80:  # never cut inside a character
            end -= 1
        pieces.append(data[start:end].decode("utf-8"))
        start = end
    return pieces


def _sample_sentences(parquet_files: list[str], cfg: TokenizerConfig) -> tuple[list[tuple[str, str]], dict]:
    """Seeded reservoir sample of (lang, line) in corpus order, plus counts of what was read and skipped.

    With `dedup_lines`, a line equal to one the reservoir holds at that moment is skipped and not counted as
    seen: exact while the cap does not bind, and memory stays bounded by the cap when it does (a line evicted
    from the reservoir may be sampled again later).
    """
    rng = random.Random(cfg.seed)
    cap = cfg.input_sentence_size
    reservoir: list[tuple[int, str, str]] = []
    held: set[str] = set()  # the lines in the reservoir, with dedup_lines (each is there at most once)
    counts = dict.fromkeys(
        ["docs_read", "sentences_seen", "duplicate_lines", "long_lines_cut", "reserved_char_lines"], 0
    )
    seen = 0
    for path in parquet_files:
        pf = open_documents(path)
        for batch in iter_batches(pf, ["text", "lang"], _READ_BATCH_ROWS):
            langs = batch.get("lang") or ["all"] * len(batch["text"])
            for text, lang in zip(batch["text"], langs):
                if not text:
                    continue
                counts["docs_read"] += 1
                for match in LINE.finditer(text):
                    pieces = _cut(match.group(0), cfg.max_sentence_length)
                    counts["long_lines_cut"] += len(pieces) > 1
                    for line in pieces:
                        if _SP_UNK_CHAR in line:  # sentencepiece would silently skip it; keep the counts honest
                            counts["reserved_char_lines"] += 1
                            continue
                        if cfg.dedup_lines and line in held:
                            counts["duplicate_lines"] += 1
                            continue
                        if seen < cap:
                            slot = len(reservoir)
                            reservoir.append((seen, lang or "und", line))
                        else:
                            slot = rng.randrange(seen + 1)
                            if slot < cap:
                                held.discard(reservoir[slot][2])
                                reservoir[slot] = (seen, lang or "und", line)
                        if slot < cap and cfg.dedup_lines:
                            held.add(line)
                        seen += 1
    counts["sentences_seen"] = seen
    reservoir.sort()  # corpus order: training input does not depend on the sampling history
    return [(lang, line) for _, lang, line in reservoir], counts


def _effective_coverage(texts: list[str], cfg: TokenizerConfig) -> float:
    """`character_coverage`, lowered so the alphabet fits in `max_alphabet_fraction` of the learnable vocab.

    Mirrors sentencepiece's own rule: characters are taken by descending frequency until the covered
    fraction reaches the coverage, so the coverage reached by the `budget` most frequent characters admits
    at most `budget` characters.
    """
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(text)
    frequencies = [n for _, n in counts.most_common()]
    total = sum(frequencies)
    fixed = len(SPECIAL_TOKENS) + (256 if cfg.byte_fallback else 0) + len(_space_digit_pieces(cfg))
    budget = max(1, int(cfg.max_alphabet_fraction * (cfg.vocab_size - fixed)))
    # Rounded down so sentencepiece's float32 comparison never admits one character more than the budget.
    cap = int(sum(frequencies[:budget]) / total * 1e6) / 1e6
    if cap >= _MIN_COVERAGE:
        return min(cfg.character_coverage, cap)
    # Sentencepiece's floor: fine if that alphabet still fits in the whole vocabulary.
    needed, covered = 0, 0
    while covered < _MIN_COVERAGE * total:
        covered += frequencies[needed]
        needed += 1
    if needed + fixed > cfg.vocab_size:
        raise ValueError(
            f"vocab_size {cfg.vocab_size} is too small for this text: covering {_MIN_COVERAGE:.0%} of its "
            f"characters takes {needed} single-character pieces plus {fixed} fixed ones; raise vocab_size"
        )
    return _MIN_COVERAGE


def _train_sentencepiece(texts: list[str], cfg: TokenizerConfig, coverage: float) -> bytes:
    extra = _space_digit_pieces(cfg)
    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(texts),
            model_writer=model,
            model_type=cfg.model_type,
            vocab_size=cfg.vocab_size - len(extra),
            character_coverage=coverage,
            byte_fallback=cfg.byte_fallback,
            split_digits=cfg.split_digits,
            split_by_whitespace=cfg.split_by_whitespace,
            split_by_unicode_script=cfg.split_by_unicode_script,
            treat_whitespace_as_suffix=cfg.treat_whitespace_as_suffix,
            max_sentencepiece_length=cfg.max_sentencepiece_length,
            normalization_rule_name=cfg.normalization,
            remove_extra_whitespaces=cfg.remove_extra_whitespaces,
            allow_whitespace_only_pieces=cfg.allow_whitespace_only_pieces,
            # No dummy leading space: "Hello" at the start of a text stays "Hello" (as in GPT-style
            # tokenizers), and decoding a slice of ids never strips a real leading space.
            add_dummy_prefix=False,
            # A newline is an ordinary character here; make sure it is a piece even in odd corpora.
            required_chars="\n",
            # Lines were already cut to max_sentence_length bytes; the sample is already capped.
            max_sentence_length=cfg.max_sentence_length,
            input_sentence_size=0,
            unk_id=SPECIAL_TOKENS["unk"],
            bos_id=SPECIAL_TOKENS["bos"],
            eos_id=SPECIAL_TOKENS["eos"],
            pad_id=SPECIAL_TOKENS["pad"],
            control_symbols=list(ROLE_TOKENS),
            num_threads=cfg.num_threads,
            minloglevel=1,  # warnings and errors only; INFO progress is thousands of lines
        )
    except RuntimeError as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        too_high = _VOCAB_TOO_HIGH.search(message)
        if too_high:
            raise ValueError(
                f"the training text is too small for vocab_size {cfg.vocab_size}: it yields at most "
                f"{int(too_high.group(1)) + len(extra)} pieces; lower vocab_size to <= "
                f"{int(too_high.group(1)) + len(extra)} or train on more text"
            ) from exc
        raise ValueError(f"sentencepiece training failed ({message}); check vocab_size against the data") from exc
    proto = model.getvalue()
    proto = _add_pieces(proto, _space_punct_pieces(cfg) + _digit_suffix_pieces(texts, proto, cfg))
    return _append_pieces(proto, extra)


def _append_pieces(model_proto: bytes, pieces: list[str]) -> bytes:
    """`model_proto` with `pieces` appended as normal BPE pieces, scored below every other piece.

    A serialized ModelProto may be extended by appending more of its repeated field 1 (`pieces`, each a
    SentencePiece message: piece = field 1, score = field 2 as float32). Sentencepiece's BPE encoder merges
    two adjacent symbols whenever their concatenation is a piece, so "▁" "1" becomes "▁1"; the lowest score
    puts that merge after every learned one (transformers' converter orders merges the same way). Added as
    merges and not as user-defined symbols, which sentencepiece matches at every text position before BPE:
    that made encoding ~15% slower.
    """
    if not pieces:
        return model_proto
    sp = spm.SentencePieceProcessor(model_proto=model_proto)
    score = min(sp.get_score(i) for i in range(sp.get_piece_size())) - 1.0
    out = bytearray(model_proto)
    for piece in pieces:
        if sp.piece_to_id(piece) != sp.unk_id():
            raise ValueError(f"piece {piece!r} is already in the vocabulary")
        data = piece.encode("utf-8")
        message = b"\x0a" + _varint(len(data)) + data + b"\x15" + struct.pack("<f", score)
        out += b"\x0a" + _varint(len(message)) + message
    return bytes(out)


def _add_pieces(model_proto: bytes, pieces: list[str]) -> bytes:
    """`model_proto` with those of `pieces` it lacks added as lowest-priority merges, in the slots of as many of
    its lowest-scored learned merges (removed), so the vocabulary size does not change.

    Pieces are kept in the given order (earlier ones first) up to a quarter of the learned multi-character
    pieces. The removed pieces are the last merges BPE learned (the rarest; at 32K on the bench corpus e.g.
    "预训练数据集", "▁Sunday", "softmax"); no learned piece is built from them (BPE builds a piece from earlier
    pieces only). The added pieces score below every learned one, so the encoder applies them only once no
    learned merge is left: against the same model without them they can only remove tokens, on any text.
    The cost is only the removed merges.
    """
    sp = spm.SentencePieceProcessor(model_proto=model_proto)
    special = (sp.is_control, sp.is_byte, sp.is_unknown, sp.is_unused)

    def is_char_piece(c: str) -> bool:
        i = sp.piece_to_id(c)
        return not any(f(i) for f in special)

    # Only pieces whose every character is a piece: sentencepiece would also merge "▁" with a character it
    # byte-encodes later ("`" when rare in the corpus), but transformers' converter builds merges from pairs of
    # vocabulary pieces, so its export would encode such text differently (seen on the demo corpus: "▁`").
    new = list(dict.fromkeys(p for p in pieces if sp.piece_to_id(p) == sp.unk_id() and all(map(is_char_piece, p))))
    learned = [
        i for i in range(sp.get_piece_size()) if len(sp.id_to_piece(i)) > 1 and not any(f(i) for f in special)
    ]
    new = new[: len(learned) // 4]
    if not new:
        return model_proto
    drop = set(sorted(learned, key=lambda i: (sp.get_score(i), -i))[: len(new)])
    out = bytearray()
    piece_index = 0
    for field, raw in _top_level_fields(model_proto):
        if field == 1:  # ModelProto.pieces, in id order
            keep = piece_index not in drop
            piece_index += 1
            if not keep:
                continue
        out += raw
    return _append_pieces(bytes(out), new)


def _top_level_fields(message: bytes) -> Iterator[tuple[int, bytes]]:
    """(field number, raw bytes of the field) of each top-level field of a serialized protobuf message."""
    pos = 0
    while pos < len(message):
        start = pos
        key, pos = _read_varint(message, pos)
        wire = key & 7
        if wire == 0:
            _, pos = _read_varint(message, pos)
        elif wire == 1:
            pos += 8
        elif wire == 2:
            length, pos = _read_varint(message, pos)
            pos += length
        elif wire == 5:
            pos += 4
        else:
            raise ValueError(f"unexpected protobuf wire type {wire} in the sentencepiece model")
        yield key >> 3, message[start:pos]


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    """(value, next position) of the protobuf base-128 varint at `pos`."""
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _space_punct_pieces(cfg: TokenizerConfig) -> list[str]:
    """"▁" + each ASCII punctuation character (`cfg.space_punct_pieces`), as a byte-level BPE's pre-tokenizer
    makes them (" @", " )"); [] when off or with the space as a suffix (they would never be used)."""
    if not cfg.space_punct_pieces or cfg.treat_whitespace_as_suffix:
        return []
    return ["\u2581" + c for c in _ASCII_PUNCTUATION]


def _digit_suffix_pieces(texts: list[str], model_proto: bytes, cfg: TokenizerConfig) -> list[str]:
    """Digit + c for the `cfg.digit_suffix_chars` characters c that most often follow a digit in `texts`
    (whitespace and digits excluded, single-character pieces of the model only), most frequent first.

    With split_digits no learned piece joins a digit to anything; these pieces join a number's last digit to
    the letter that follows it ("2024年" is "2" "0" "2" "4年"); still one digit per token.
    """
    if not (cfg.split_digits and cfg.digit_suffix_chars):
        return []
    sp = spm.SentencePieceProcessor(model_proto=model_proto)
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(_DIGIT_SUFFIX.findall(text))
    ids = {c: sp.piece_to_id(c) for c in counts}
    # Letters only (Han characters count as letters: 年 月 日 个 元): never another digit of any script ("２", "٣",
    # no piece may hold two digits), and never punctuation or symbols, so decimals, thousands separators, dates
    # and percentages ("10.5%", "1,000", "2024-11") stay one digit per token with nothing attached.
    chars = [c for c, _ in counts.most_common()
             if c.isalpha() and not (c.isdigit() or sp.is_unknown(ids[c]) or sp.is_byte(ids[c]))]
    return [d + c for c in chars[: cfg.digit_suffix_chars] for d in "0123456789"]


def _varint(n: int) -> bytes:
    """Protobuf base-128 varint of a non-negative int."""
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _space_digit_pieces(cfg: TokenizerConfig) -> list[str]:
    """The space+digit pieces of `cfg.space_digit_pieces` ([] when off or when digits are not split)."""
    if not (cfg.space_digit_pieces and cfg.split_digits):
        return []
    space = "\u2581"  # sentencepiece's space marker
    # With the space as a suffix a digit never follows a piece-initial space: the pieces would never be used.
    return [] if cfg.treat_whitespace_as_suffix else [space + d for d in "0123456789"]


def _write_vocab(model_proto: bytes, path: Path) -> None:
    sp = spm.SentencePieceProcessor(model_proto=model_proto)
    escapes = str.maketrans({"\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"})
    lines = [f"{sp.id_to_piece(i).translate(escapes)}\t{sp.get_score(i):g}\n" for i in range(sp.get_piece_size())]
    path.write_text("".join(lines), encoding="utf-8")


def _compression_by_language(tok: Tokenizer, sample: list[tuple[str, str]], num_threads: int) -> dict[str, dict]:
    """Characters and UTF-8 bytes per token of the training sample, per `lang` value."""
    by_lang: dict[str, list[str]] = {}
    for lang, text in sample:
        by_lang.setdefault(lang, []).append(text)
    stats = {}
    for lang, texts in sorted(by_lang.items()):
        tokens = 0
        for start in range(0, len(texts), _STATS_CHUNK):  # chunks: never hold every id of the sample
            tokens += sum(len(ids) for ids in tok.encode_batch(texts[start : start + _STATS_CHUNK], num_threads))
        chars = sum(len(t) for t in texts)
        nbytes = sum(len(t.encode("utf-8")) for t in texts)
        stats[lang] = {
            "sentences": len(texts),
            "chars": chars,
            "bytes": nbytes,
            "tokens": tokens,
            "chars_per_token": round(chars / tokens, 4),
            "bytes_per_token": round(nbytes / tokens, 4),
        }
    return stats
