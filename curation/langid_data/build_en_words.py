"""Build `en_words.json`, the English wordlist behind `curation.langid`'s English check.

Source: English text under ../shared/data (each folder's SOURCES.md gives origin and licence): LLaMA-Factory's
Wikipedia and C4 demos, WikiText-2 valid, two Dolma CCNet shards, Wharton's "The Verdict" (text/en), the DCLM
human-quality documents (quality/), and the rasbt instruction set and Dolly fixture (sft/). Licences: Wikipedia
and WikiText CC BY-SA, C4 and Dolma ODC-By, DCLM MIT, rasbt Apache-2.0, Dolly CC BY-SA 3.0, The Verdict public
domain; the list keeps only words and their frequency rank, none of the text. Only sentences lid.176 itself
labels English with probability >= 0.9 are counted, so the foreign names and quotes those pages carry mostly
stay out. A word is a run of letters, lower-cased (the split `curation.langid` uses); it is kept when it occurs
at least `MIN_COUNT` times, most frequent first. None of it is the lingua test data that bench/langid.py scores.

    .venv/bin/python curation/langid_data/build_en_words.py     # ~10 s, rewrites en_words.json
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from curation.langid import WORD, fasttext_top  # noqa: E402

DATA = HERE.parents[2] / "shared" / "data"
TEXT = DATA / "text" / "en"
DCLM = DATA / "quality" / "dclm_human_quality" / "majority_minus_agreement.jsonl"
SFT = [DATA / "sft" / "rasbt_instruction-data.json", DATA / "sft" / "litgpt_fixture_dolly.json"]
MIN_COUNT = 2  # a word seen once is as likely a name or a typo as vocabulary
MAX_WORDS = 20_000
LINE_MIN_PROB = 0.9


def lines() -> list[str]:
    out = []
    for name in ("llamafactory_wiki_demo.txt", "wikitext-2-valid.txt", "the-verdict.txt"):
        text = (TEXT / name).read_text(encoding="utf-8")
        text = text.replace("<unk>", " ").replace(" @-@ ", "-").replace(" @,@ ", ",").replace(" @.@ ", ".")
        out += text.splitlines()
    for path in [TEXT / "llamafactory_c4_demo.jsonl", TEXT / "dolma_cc_en_head-0091.jsonl",
                 TEXT / "dolma_cc_en_head-0174.jsonl", DCLM]:
        for row in path.read_text(encoding="utf-8").splitlines():
            out += json.loads(row)["text"].splitlines()
    for path in SFT:
        for record in json.loads(path.read_text(encoding="utf-8")):
            out += [v for v in record.values() if isinstance(v, str)]
    # Wikipedia articles are one line each: split into sentences so one foreign quote does not sink a whole line.
    return [s for line in out for s in re.split(r"(?<=[.!?])\s+", line) if s.strip()]


def main() -> None:
    if not TEXT.exists():
        sys.exit(f"{TEXT} is absent: the wordlist is built from the shared English text")
    counts: Counter[str] = Counter()
    used = 0
    for line in lines():
        label, prob = fasttext_top(line)
        if label == "en" and prob >= LINE_MIN_PROB:
            used += 1
            counts.update(WORD.findall(line.lower()))
    words = [w for w, n in counts.most_common(MAX_WORDS) if n >= MIN_COUNT]
    doc = {
        "about": "English wordlist for curation.langid; built by build_en_words.py from ../shared/data/text/en "
        "(Wikipedia and WikiText CC BY-SA, C4 and Dolma ODC-By, The Verdict PD), the DCLM human-quality docs (MIT) "
        "and two instruction sets (rasbt Apache-2.0, Dolly CC BY-SA 3.0); sentences lid.176 labels en >= 0.9, "
        f"words seen >= {MIN_COUNT} times, most frequent first",
        "sentences": used,
        "words": words,
    }
    (HERE / "en_words.json").write_text(json.dumps(doc, indent=0, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{len(words)} words from {used} sentences -> {HERE / 'en_words.json'}")


if __name__ == "__main__":
    main()
