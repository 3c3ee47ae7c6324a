"""Tokenizer bench: our sentencepiece BPE vs a Hugging Face `tokenizers` byte-level BPE (as is, and with every
digit split like ours) vs sentencepiece with LLaMA-style settings, trained on the same text at the same
vocabulary size, in one run.

    .venv/bin/python bench/tokenizer.py                 # 32K vocabulary, ~2-3 min on 2 cores
    .venv/bin/python bench/tokenizer.py --vocab 8000

Needs `pip install -e .[bench]` (tokenizers) and ../shared/data/text (see its SOURCES.md).
Training text: every zh and en corpus there except the held-out parts (~11 MB, 1/4 en). Held out:

* `en`: WikiText-2 validation (Wikipedia, pre-tokenised with spaces around punctuation and `@-@`);
* `en-wiki-raw`: every 5th article of LLaMA-Factory's wiki_demo (plain Wikipedia text, not pre-tokenised);
* `zh`: every 5th CMRC 2018 paragraph (modern Simplified Chinese Wikipedia);
* `zh-classical`: Mencius (孟子, Traditional script, Classical Chinese; the rest of chinese-poetry is trained on).

Each tokenizer is trained in a fresh spawned process, which reports its wall time and peak RSS. Encoding speed
is UTF-8 megabytes of held-out text per CPU-second of this process (one thread each), so it means "per core"
even on a shared machine; the tokenizers take turns over 5 rounds and the best round of each counts.
Round trip: `decode(encode(doc)) == doc` over held-out documents plus a Unicode stress set (every kind of
whitespace, emoji, U+2581, control characters, random code points).
The last table trains ours on the corpus repeated 1x, 2x and 4x under a fixed `input_sentence_size` cap, with
`dedup_lines` off (it would drop the copies): peak RSS stays flat once the cap binds.
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing
import os
import platform
import random
import re
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAYON_NUM_THREADS", "1")  # HF tokenizers: one encoding thread, like the others
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPO = Path(__file__).resolve().parents[1]
# This file is named tokenizer.py: make `import tokenizer` find the package, not this script.
sys.path[:] = [str(REPO)] + [p for p in sys.path if Path(p or ".").resolve() != REPO / "bench"]

SHARED_TEXT = REPO.parent / "shared" / "data" / "text"
_WIKITEXT_TITLE = re.compile(r"^ = [^=].* = $", re.M)
_HELD_OUT_CLASSICAL = "四书五经/mengzi.json"
SPECIALS = ["<s>", "</s>", "<pad>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]


# ------------------------------------------------------------------------------------------------------- data


def _jsonl_texts(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [t for line in f if line.strip() and (t := json.loads(line).get("text"))]


def _poetry_docs(node: object) -> list[str]:
    """Every list of strings under a paragraphs/content/para key, joined by newlines, as one document."""
    docs: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("paragraphs", "content", "para") and isinstance(value, list) and value and all(
                isinstance(v, str) for v in value
            ):
                docs.append("\n".join(value))
            elif isinstance(value, (dict, list)):
                docs += _poetry_docs(value)
    elif isinstance(node, list):
        for item in node:
            docs += _poetry_docs(item)
    return docs


def wikitext_articles(path: Path) -> list[str]:
    """WikiText-2 split into articles at its top-level ` = Title = ` lines."""
    text = path.read_text(encoding="utf-8")
    starts = [m.start() for m in _WIKITEXT_TITLE.finditer(text)] + [len(text)]
    return [text[a:b] for a, b in zip(starts, starts[1:]) if text[a:b].strip()]


def load_corpus(root: Path = SHARED_TEXT) -> tuple[list[tuple[str, str]], dict[str, list[str]]]:
    """`(train [(lang, text)], held_out {name: [text]})`; FileNotFoundError when `root` is missing."""
    if not root.is_dir():
        raise FileNotFoundError(f"{root} not found; this bench needs the shared text corpora (see SOURCES.md)")
    en, zh = root / "en", root / "zh"
    train: list[tuple[str, str]] = []
    # English.
    play = (en / "tinyshakespeare.txt").read_text(encoding="utf-8")
    train += [("en", scene) for scene in play.split("\n\n") if scene.strip()]
    train.append(("en", (en / "the-verdict.txt").read_text(encoding="utf-8")))
    with open(en / "llamafactory_wiki_demo.txt", encoding="utf-8") as f:
        wiki = [line.rstrip("\n") for line in f if line.strip()]
    train += [("en", t) for i, t in enumerate(wiki) if i % 5]
    for name in ("llamafactory_c4_demo.jsonl", "dolma_cc_en_head-0091.jsonl", "dolma_cc_en_head-0174.jsonl"):
        train += [("en", t) for t in _jsonl_texts(en / name)]
    # Chinese.
    cmrc = _jsonl_texts(zh / "cmrc2018_wikipedia_contexts.jsonl")
    train += [("zh", t) for i, t in enumerate(cmrc) if i % 5]
    train += [("zh", p.read_text(encoding="utf-8")) for p in sorted((zh / "happy-llm").glob("*.md"))]
    llmbox = (zh / "llmbox_chinese.txt").read_text(encoding="utf-8")
    train += [("zh", chunk) for chunk in llmbox.split("\n\n") if chunk.strip()]
    for name in ("sophonplus_waimai_10k.csv", "sophonplus_ChnSentiCorp_htl_all.csv"):
        with open(zh / name, encoding="utf-8") as f:
            train += [("zh", row["review"]) for row in csv.DictReader(f) if row.get("review")]
    poetry = zh / "chinese-poetry"
    for path in sorted(poetry.rglob("*.json")):
        if path.relative_to(poetry).as_posix() != _HELD_OUT_CLASSICAL:
            train += [("zh", d) for d in _poetry_docs(json.loads(path.read_text(encoding="utf-8")))]
    held_out = {
        "en": wikitext_articles(en / "wikitext-2-valid.txt"),
        "en-wiki-raw": [t for i, t in enumerate(wiki) if i % 5 == 0],
        "zh": [t for i, t in enumerate(cmrc) if i % 5 == 0],
        "zh-classical": _poetry_docs(json.loads((poetry / _HELD_OUT_CLASSICAL).read_text(encoding="utf-8"))),
    }
    return train, held_out


def stress_texts(n: int = 500, seed: int = 0) -> list[str]:
    """Strings that break tokenizers that normalise or drop whitespace, plus random code points."""
    fixed = [
        " ", "\n", "  two  spaces  ", "\ttab\t", "\n\nnewlines\n\n", "crlf\r\n", "def f(x):\n    return x\n",
        "中文：你好，世界！\n第二行。", "ｆｕｌｌ width，全角", "emoji 😀👍🏽 ZWJ 👩‍👩‍👧", "marker \u2581 \u2581\u2581",
        "e\u0301 ﬁ \u200b \ufeff \x00 \x7f \U0010ffff", "<|user|> <s> </s> <pad> <unk>",
    ]  # fmt: skip
    rng = random.Random(seed)
    pools = [(0x20, 0x7E), (0x80, 0x7FF), (0x4E00, 0x9FFF), (0x800, 0xD7FF), (0xE000, 0x10FFFF)]
    rand = ["".join(chr(rng.randint(*rng.choice(pools))) if rng.random() > 0.3 else rng.choice(" \n\t\u2581")
                    for _ in range(rng.randint(1, 30))) for _ in range(n)]  # fmt: skip
    return fixed + rand


# ---------------------------------------------------------------------------------------------- the three


def _train_ours(train_file: Path, out: Path, vocab: int, cap: int, dedup_lines: bool = True) -> None:
    from tokenizer import TokenizerConfig, train_tokenizer

    cfg = TokenizerConfig(vocab_size=vocab, input_sentence_size=cap, dedup_lines=dedup_lines)
    stats = train_tokenizer([str(train_file)], out, cfg)
    (out / "bench-stats.json").write_text(json.dumps(stats), encoding="utf-8")


def _train_ours_all_lines(train_file: Path, out: Path, vocab: int, cap: int) -> None:
    """Ours without dropping repeated lines: the memory table repeats the corpus, so only the cap may bind."""
    _train_ours(train_file, out, vocab, cap, dedup_lines=False)


def _train_hf(train_file: Path, out: Path, vocab: int, cap: int) -> None:
    import pyarrow.parquet as pq
    from tokenizers import ByteLevelBPETokenizer

    texts = pq.read_table(train_file, columns=["text"]).column("text").to_pylist()
    tok = ByteLevelBPETokenizer()
    tok.train_from_iterator(texts, vocab_size=vocab, min_frequency=2, special_tokens=SPECIALS)
    out.mkdir(parents=True, exist_ok=True)
    tok.save(str(out / "tokenizer.json"))


def _train_hf_digits(train_file: Path, out: Path, vocab: int, cap: int) -> None:
    """The same HF byte-level BPE, but every digit its own pre-token: the digit policy ours and LLaMA use."""
    import pyarrow.parquet as pq
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    texts = pq.read_table(train_file, columns=["text"]).column("text").to_pylist()
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab, min_frequency=2, special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )  # fmt: skip
    tok.train_from_iterator(texts, trainer=trainer)
    out.mkdir(parents=True, exist_ok=True)
    tok.save(str(out / "tokenizer.json"))


def _train_spm_llama(train_file: Path, out: Path, vocab: int, cap: int) -> None:
    """LLaMA's trainer settings (its tokenizer.model's trainer_spec), fed a text file's lines as LLaMA was."""
    import pyarrow.parquet as pq
    import sentencepiece as spm

    texts = pq.read_table(train_file, columns=["text"]).column("text").to_pylist()
    lines = [line for text in texts for line in text.split("\n") if line]
    out.mkdir(parents=True, exist_ok=True)
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_prefix=str(out / "tokenizer"), model_type="bpe", vocab_size=vocab,
        character_coverage=0.99995, split_digits=True, byte_fallback=True, normalization_rule_name="identity",
        add_dummy_prefix=True, remove_extra_whitespaces=False, allow_whitespace_only_pieces=True,
        max_sentence_length=4192, input_sentence_size=cap, shuffle_input_sentence=True,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, user_defined_symbols=[], num_threads=2, minloglevel=2,
    )  # fmt: skip


TRAINERS = {"ours": _train_ours, "hf": _train_hf, "hf-digits": _train_hf_digits, "spm": _train_spm_llama}
NAMES = {
    "ours": "ours (lmpipe)",
    "hf": "HF byte-level BPE",
    "hf-digits": "HF byte-level BPE, digits split",
    "spm": "sentencepiece LLaMA-style",
}


def _child(kind: str, train_file: str, out: str, vocab: int, cap: int, queue) -> None:
    started = time.perf_counter()
    (_train_ours_all_lines if kind == "ours-all-lines" else TRAINERS[kind])(Path(train_file), Path(out), vocab, cap)
    seconds = time.perf_counter() - started
    queue.put((seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))  # KiB -> MiB on Linux


def train_in_child(kind: str, train_file: Path, out: Path, vocab: int, cap: int) -> tuple[float, float]:
    """(training seconds, peak RSS MiB) of training `kind` in a fresh spawned process."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(kind, str(train_file), str(out), vocab, cap, queue))
    proc.start()
    result = queue.get()
    proc.join()
    if proc.exitcode:
        sys.exit(f"training {kind} failed (exit code {proc.exitcode})")
    return result


def load_codec(kind: str, out: Path):
    """(encode_batch(texts) -> list of id lists, decode(ids) -> str) of a trained tokenizer."""
    if kind == "ours":
        from tokenizer import load

        tok = load(out)
        return (lambda texts: tok.encode_batch(texts, num_threads=1)), tok.decode
    if kind in ("hf", "hf-digits"):
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(out / "tokenizer.json"))
        encode = lambda texts: [e.ids for e in tok.encode_batch(texts, add_special_tokens=False)]  # noqa: E731
        return encode, lambda ids: tok.decode(ids, skip_special_tokens=False)
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(out / "tokenizer.model"))
    return (lambda texts: sp.encode(list(texts), num_threads=1)), sp.decode


def measure(kind: str, out: Path, held_out: dict[str, list[str]], stress: list[str]) -> dict:
    encode, decode = load_codec(kind, out)
    row: dict = {}
    nbytes = cpu = 0.0
    exact = total = 0
    for name, texts in held_out.items():
        cpu0 = time.process_time()
        ids = encode(texts)
        cpu += time.process_time() - cpu0
        n_tokens = sum(len(x) for x in ids)
        row[f"{name} chars/token"] = sum(len(t) for t in texts) / n_tokens
        row[f"{name} bytes/token"] = sum(len(t.encode("utf-8")) for t in texts) / n_tokens
        nbytes += sum(len(t.encode("utf-8")) for t in texts)
        exact += sum(decode(x) == t for x, t in zip(ids, texts))
        total += len(texts)
    exact += sum(decode(x) == t for x, t in zip(encode(stress), stress))
    total += len(stress)
    row["round trip exact"] = exact / total
    row["encode MB/s per core"] = nbytes / 1e6 / cpu
    return row


def encode_speeds(outs: dict[str, Path], held_out: dict[str, list[str]], rounds: int = 5) -> dict[str, float]:
    """Encode MB/s per core of each tokenizer: the best of `rounds` passes over all held-out text, the
    tokenizers taking turns within each round, so load from other processes hits them alike."""
    texts = [t for name in held_out for t in held_out[name]]
    nbytes = sum(len(t.encode("utf-8")) for t in texts)
    encoders = {kind: load_codec(kind, out)[0] for kind, out in outs.items()}
    best = dict.fromkeys(encoders, float("inf"))
    for _ in range(rounds):
        for kind, encode in encoders.items():
            cpu0 = time.process_time()
            encode(texts)
            best[kind] = min(best[kind], time.process_time() - cpu0)
    return {kind: nbytes / 1e6 / cpu for kind, cpu in best.items()}


def token_shares(out: Path, held_out: dict[str, list[str]]) -> dict[str, tuple[float, float, float]]:
    """Per held-out set: the share of our tokens that are only spaces, that hold a digit, that are byte tokens."""
    from tokenizer import load

    tok = load(out)
    shares = {}
    for name, texts in held_out.items():
        pieces = [tok.id_to_piece(i) for ids in tok.encode_batch(texts) for i in ids]
        n = len(pieces)
        shares[name] = (
            sum(p.strip("\u2581") == "" for p in pieces) / n,
            sum(any(c.isdigit() for c in p) and not p.startswith("<0x") for p in pieces) / n,
            sum(p.startswith("<0x") and p.endswith(">") and len(p) == 6 for p in pieces) / n,
        )
    return shares


# ------------------------------------------------------------------------------------------------------ main


def _fmt(metric: str, value: float) -> str:
    if metric == "round trip exact":
        return f"{value:.1%}"
    if metric.endswith("/token"):  # the compression targets are decided in the third decimal
        return f"{value:.3f}"
    return f"{value:.2f}" if value < 100 else f"{value:,.0f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--cap", type=int, default=100_000, help="input_sentence_size of ours (and of sentencepiece)")
    ap.add_argument("--no-memory", action="store_true", help="skip the 1x/2x/4x peak-RSS table")
    args = ap.parse_args()
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tokenizer import TokenizerConfig
    from tokenizer.train import LINE as TRAIN_LINE

    max_sentence_length = TokenizerConfig().max_sentence_length
    train, held_out = load_corpus()
    stress = stress_texts()
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)

        def write(copies: int) -> Path:
            path = tmp_path / f"x{copies}" / "train-00000.parquet"
            path.parent.mkdir()
            docs = train * copies
            table = pa.table({"text": [t for _, t in docs], "lang": [lang for lang, _ in docs]})
            pq.write_table(table, path, row_group_size=5000)
            return path

        train_file = write(1)
        for kind in TRAINERS:
            out = tmp_path / kind
            seconds, rss = train_in_child(kind, train_file, out, args.vocab, args.cap)
            results[kind] = {**measure(kind, out, held_out, stress), "train seconds": seconds, "peak RSS MiB": rss}
            if kind == "ours":
                ours_stats = json.loads((out / "bench-stats.json").read_text(encoding="utf-8"))
                ours_shares = token_shares(out, held_out)
        for kind, speed in encode_speeds({kind: tmp_path / kind for kind in TRAINERS}, held_out).items():
            results[kind]["encode MB/s per core"] = speed
        memory = []
        if not args.no_memory:
            for copies in (1, 2, 4):
                path = train_file if copies == 1 else write(copies)
                lines = sum(1 for text in pq.read_table(path, columns=["text"]).column("text").to_pylist()
                            for _ in TRAIN_LINE.finditer(text))  # fmt: skip
                seconds, rss = train_in_child("ours-all-lines", path, tmp_path / f"ours-x{copies}", args.vocab,
                                              args.cap)  # fmt: skip
                memory.append((copies, path.stat().st_size, lines, seconds, rss))

    sizes = {lang: sum(len(t.encode("utf-8")) for text_lang, t in train if text_lang == lang) / 1e6
             for lang in ("en", "zh")}
    print(f"# bench/tokenizer.py  vocab={args.vocab}  cap={args.cap:,} lines  {time.strftime('%Y-%m-%d')}  "
          f"{platform.machine()} {os.cpu_count()} cores  python {platform.python_version()}")  # fmt: skip
    print(f"Training text: {sizes['en']:.1f} MB en + {sizes['zh']:.1f} MB zh. Held out: "
          + ", ".join(f"{k} {sum(len(t.encode()) for t in v) / 1e6:.2f} MB" for k, v in held_out.items()) + "\n")
    print("| metric | " + " | ".join(NAMES.values()) + " | ours / HF | ours / HF digits split | ours / sentencepiece |")
    print("|---|" + "---:|" * (2 * len(NAMES) - 1))
    for metric in results["ours"]:
        values = [results[k][metric] for k in TRAINERS]
        ratios = [values[0] / v if v else float("nan") for v in values[1:]]
        print(f"| {metric} | " + " | ".join(_fmt(metric, v) for v in values) + " | "
              + " | ".join(f"{r:.3f}" if metric.endswith("/token") else f"{r:.2f}" for r in ratios)
              + " |")  # fmt: skip
    print(f"\nOurs, training sample: {ours_stats['sentences_seen']:,} distinct lines of {ours_stats['docs_read']:,} "
          f"documents used ({ours_stats['sentences_used']:,}); {ours_stats['duplicate_lines']:,} repeated lines "
          f"skipped; {ours_stats['long_lines_cut']:,} lines over {max_sentence_length:,} bytes cut (not dropped); "
          f"per language: " + ", ".join(f"{k} {v['sentences']:,} lines / {v['bytes'] / 1e6:.1f} MB"
                                        for k, v in ours_stats["languages"].items()))  # fmt: skip
    print("Ours, share of held-out tokens that are a bare space run / hold a digit / are byte fallback: "
          + "; ".join(f"{k} {a:.1%} / {b:.1%} / {c:.1%}" for k, (a, b, c) in ours_shares.items()))
    if memory:
        print(f"\nOurs on the training text repeated, input_sentence_size={args.cap:,} lines:\n")
        print("| corpus | Parquet MB | lines | lines used | train s | peak RSS MiB | RSS / 1x |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for copies, size, lines, seconds, rss in memory:
            print(f"| {copies}x | {size / 1e6:.1f} | {lines:,} | {min(lines, args.cap):,} | {seconds:.1f} | "
                  f"{rss:,.0f} | {rss / memory[0][4]:.2f} |")


if __name__ == "__main__":
    main()
