"""Evaluation of trained models and decontamination of corpora against the eval sets.

* `evals.tasks`: the shipped multiple-choice sets (evals/data, licences in evals/SOURCES.md) and the loader.
* `evals.harness`: the eval stage, `run_eval(model_dir, out_dir, cfg)` (bits per byte + multiple choice).
* `evals.decontam`: an n-gram index of every shipped eval text; `overlaps(text)` names the sets a document
  contains, for the filter stage's `decontam:<set>` drop reason.
"""
