"""Which code built an artifact: a digest of each stage's own modules and the versions of the libraries they use.

Artifact ids cover the config, the parents and the raw inputs, not the code: a changed extractor or a trafilatura
upgrade would silently reuse outputs built by the old one. Every manifest therefore records ``code``:

* ``modules``: the SHA-256 (12 hex) of each project module's code (its tokens: comments, docstrings and line
  wrapping do not count) that the stage runs: its roots below, plus every project
  module they import, followed through the imports (found by parsing the source, nothing is imported);
* ``libraries``: the installed version of each third-party distribution those modules import;
* ``digest``: one SHA-256 over both.

Stage versions stay for semantic changes (they change the id). ``lmpipe status`` lists the artifacts whose
``code.digest`` differs from the code installed now, and ``lmpipe run … --refresh stale`` rebuilds them.

    from flows.provenance import stage_code
    stage_code("ingest")["digest"]
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import io
import re
import sys
import tokenize
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# Project packages whose modules decide outputs (the store and the flows only move them around).
PROJECT = ("curation", "tokenizer", "model", "evals")

# The modules where each stage's work is; their project imports are followed. `curation.stages` holds every
# curation stage's runner, so an edit there marks them all (coarse, never silent).
ROOTS: dict[str, tuple[str, ...]] = {
    "crawl": ("curation.crawl", "curation.warc_writer"),
    "ingest": ("curation.stages", "curation.readers", "curation.extract", "curation.documents"),
    "langid": ("curation.stages", "curation.langid"),
    "filter": ("curation.stages", "curation.filters", "curation.pii", "evals.decontam"),
    "dedup": ("curation.stages", "curation.dedup", "curation.dedup_sharded"),
    "quality_model": ("curation.stages", "curation.quality"),
    "quality": ("curation.stages", "curation.quality"),
    "mix": ("curation.mix", "curation.report"),
    "tokenizer": ("tokenizer.stages", "tokenizer.train"),
    "tokens": ("tokenizer.stages", "tokenizer.shards"),
    "pretrain": ("model.pretrain",),
    "sft": ("model.sft",),
    "eval": ("evals.harness",),
    "eval_sft": ("evals.harness",),
}
_PLUMBING = ("storage", "flows", "bench", "tests")
# Data shipped with the code that decides a stage's output (hashed like its modules).
DATA: dict[str, tuple[str, ...]] = {"langid": ("curation/langid_data",), "filter": ("evals/data",),
                                    "eval": ("evals/data",), "eval_sft": ("evals/data",)}
# Followed for their libraries but not for their own imports (glue that imports every stage).
_LEAVES = {"curation.stages", "flows.dag", "flows.cli"}
# Imports that say nothing about a stage's output (standard library is skipped automatically).
_IGNORED = {"typing_extensions", "loguru", "tqdm", "rich", "prefect", "pydantic"}


def _source(module: str) -> Path | None:
    parts = module.split(".")
    for candidate in (REPO.joinpath(*parts).with_suffix(".py"), REPO.joinpath(*parts, "__init__.py")):
        if candidate.is_file():
            return candidate
    return None


# `import a.b, c` and `from a.b import (c, d)`, at any indentation (lazy imports in functions count). A regex,
# not ast: parsing the ~40 modules of the stages took 1.5 s, this takes milliseconds.
_IMPORT = re.compile(r"^[ \t]*(?:import[ \t]+([\w., \t]+)|from[ \t]+([\w.]+)[ \t]+import[ \t]+(\([^)]*\)|[^\n]*))",
                     re.MULTILINE)


@functools.lru_cache(maxsize=None)
def _imports(path: Path) -> frozenset[str]:
    """Absolute module names imported in ``path``; ``from pkg import name`` also yields ``pkg.name`` (it may
    be a module). Relative imports are not used in this project."""
    names: set[str] = set()
    for plain, module, imported in _IMPORT.findall(path.read_text(encoding="utf-8")):
        if plain:
            names.update(part.split(" as ")[0].strip() for part in plain.split(","))
        elif module:
            names.add(module)
            for part in imported.strip("()").replace("\n", ",").split(","):
                name = part.split("#")[0].split(" as ")[0].strip()
                if name.isidentifier():
                    names.add(f"{module}.{name}")
    return frozenset(n for n in names if n)


def _closure(roots: tuple[str, ...]) -> tuple[dict[str, Path], set[str]]:
    """(project modules reached from ``roots`` -> source file, top-level third-party names they import)."""
    modules: dict[str, Path] = {}
    third: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in modules:
            continue
        path = _source(name)
        if path is None:
            continue
        modules[name] = path
        for imported in _imports(path):
            top = imported.split(".")[0]
            if top in PROJECT:
                if name not in _LEAVES or imported in roots:
                    todo.append(imported)
            elif top not in sys.stdlib_module_names and top not in _IGNORED and top not in _PLUMBING \
                    and not top.startswith("_"):
                third.add(top)
    return modules, third


# Modules installed under another distribution name (the first one installed is taken).
_ALIASES = {"fasttext": ("fasttext-predict", "fasttext-wheel", "fasttext-numpy2-wheel", "fasttext"),
            "yaml": ("pyyaml",), "PIL": ("pillow",), "sklearn": ("scikit-learn",)}


@functools.lru_cache(maxsize=1)
def _distributions() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


def _versions(tops: set[str]) -> dict[str, str]:
    """Installed version per distribution; a module named like its distribution is looked up directly
    (packages_distributions() scans every installed package, ~0.7 s here, so only for the others)."""
    out: dict[str, str] = {}
    for top in sorted(tops):
        found = False
        for dist in _ALIASES.get(top, (top.replace("_", "-"),)):
            try:
                out[dist] = importlib.metadata.version(dist)
                found = True
                break
            except importlib.metadata.PackageNotFoundError:
                continue
        for dist in [] if found else _distributions().get(top, []):
            try:
                out[dist] = importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                continue
    return out


@functools.lru_cache(maxsize=None)
def _code_digest(path: Path) -> str:
    """SHA-256 (12 hex) of a module's tokens without comments, docstrings and line wrapping: rewrapping a line or
    editing a comment leaves the digest (and the artifacts built by the module) as they are. Falls back to the
    raw bytes for a file that does not tokenize."""
    text = path.read_text(encoding="utf-8")
    kept: list[str] = []
    statement_start = True  # a string alone at the start of a statement is a docstring (or a no-op)
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError):
        return hashlib.sha256(text.encode()).hexdigest()[:12]
    for i, tok in enumerate(tokens):
        if tok.type in (tokenize.COMMENT, tokenize.NL):
            continue
        if tok.type == tokenize.STRING and statement_start:
            following = next((t for t in tokens[i + 1:] if t.type not in (tokenize.COMMENT, tokenize.NL)), None)
            if following is None or following.type in (tokenize.NEWLINE, tokenize.ENDMARKER):
                continue
        statement_start = tok.type in (tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT)
        kept.append(tok.string if tok.type not in (tokenize.INDENT, tokenize.DEDENT) else f"<{tok.type}>")
    return hashlib.sha256("\x00".join(kept).encode()).hexdigest()[:12]


@functools.lru_cache(maxsize=None)
def stage_code(stage: str) -> dict[str, Any]:
    """``{"digest", "modules", "libraries"}`` of the code installed now for ``stage`` (cached per process)."""
    modules, third = _closure(ROOTS.get(stage, ()))
    files = {m: _code_digest(p) for m, p in sorted(modules.items())}
    for folder in DATA.get(stage, ()):
        for f in sorted((REPO / folder).rglob("*")):
            if f.is_file() and "__pycache__" not in f.parts:
                files[f.relative_to(REPO).as_posix()] = hashlib.sha256(f.read_bytes()).hexdigest()[:12]
    libraries = _versions(third)
    digest = hashlib.sha256(repr((sorted(files.items()), sorted(libraries.items()))).encode()).hexdigest()[:16]
    return {"digest": digest, "modules": files, "libraries": libraries}


def changes(recorded: dict[str, Any] | None, stage: str) -> list[str]:
    """What differs between the code recorded in a manifest and the code installed now; [] when the same.
    A manifest from before code was recorded is reported as such (it may be stale; nothing says)."""
    now = stage_code(stage)
    if not recorded:
        return ["built before code digests were recorded"]
    if recorded.get("digest") == now["digest"]:
        return []
    out = []
    old_m, new_m = recorded.get("modules", {}), now["modules"]
    out += [f"{m} changed" for m in sorted(set(old_m) & set(new_m)) if old_m[m] != new_m[m]]
    out += [f"{m} added" for m in sorted(set(new_m) - set(old_m))]
    out += [f"{m} removed" for m in sorted(set(old_m) - set(new_m))]
    old_l, new_l = recorded.get("libraries", {}), now["libraries"]
    out += [f"{d} {old_l.get(d, '-')} -> {new_l.get(d, '-')}" for d in sorted(set(old_l) | set(new_l))
            if old_l.get(d) != new_l.get(d)]
    return out or ["code digest differs"]
