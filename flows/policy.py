"""What a deployment's parameters may ask of the worker that runs them.

Anyone who can start a "Custom run" in the Prefect UI chooses its parameters, and the work runs on the worker,
with the worker's network and files. Two settings are the operator's, not the UI user's:

* ``crawl.allow_private`` / ``crawl.allow_networks`` let the crawler reach private, loopback and link-local
  addresses (a request forgery from inside the worker's network): refused unless the worker's environment has
  ``LMPIPE_ALLOW_PRIVATE_CRAWL=1``;
* the ``home`` parameter (where artifacts are written) must be the worker's own ``LMPIPE_HOME``;
* file parameters (``inputs``, ``sft_data``, ``crawl.seeds_file``, ``quality_model.positives``/``labels``,
  ``quality.model_path``) name files on the worker: each must lie under one of the roots in the worker's
  ``LMPIPE_INPUT_ROOTS`` (``os.pathsep``-separated), or be the project's own ``demo/`` data or shipped models.
  Symbolic links are resolved first, so a link cannot lead out of a root. ``s3://``-style URLs are left to the
  object store's own credentials.

Runs started from the CLI are the operator's own and are not checked. The flows call ``check(cfg, home)`` when
the flow run belongs to a deployment (``from_deployment()``).
"""

from __future__ import annotations

import os
from pathlib import Path

from flows.config import REPO_ROOT, PipelineConfig, UserError

ALLOW_PRIVATE_ENV = "LMPIPE_ALLOW_PRIVATE_CRAWL"
INPUT_ROOTS_ENV = "LMPIPE_INPUT_ROOTS"
DEFAULT_ROOTS = (REPO_ROOT / "demo", REPO_ROOT / "curation" / "models")


def input_roots(env: dict[str, str] | None = None) -> list[Path]:
    """The directories a deployment's file parameters must lie under (resolved)."""
    raw = (os.environ if env is None else env).get(INPUT_ROOTS_ENV, "")
    roots = [Path(r) for r in raw.split(os.pathsep) if r.strip()] + list(DEFAULT_ROOTS)
    return [r.resolve() for r in roots]


def _files(cfg: PipelineConfig) -> list[tuple[str, str]]:
    """(setting, path) of every file parameter of the config."""
    named = [("inputs", p) for p in cfg.inputs] + [("sft_data", p) for p in cfg.sft_data]
    named += [("quality_model.positives", p) for p in cfg.quality_model.positives]
    if cfg.quality_model.labels:
        named.append(("quality_model.labels", cfg.quality_model.labels))
    if cfg.crawl.seeds_file:
        named.append(("crawl.seeds_file", cfg.crawl.seeds_file))
    if cfg.quality.model_path and cfg.quality.model_path != "default":
        named.append(("quality.model_path", cfg.quality.model_path))
    return named


def problems(cfg: PipelineConfig, home: str | None = None, env: dict[str, str] | None = None) -> list[str]:
    """What this config (and ``home`` parameter) asks that the worker's environment does not allow; []: nothing."""
    env = dict(os.environ if env is None else env)
    out = []
    if home and home != env.get("LMPIPE_HOME"):
        out.append(f"home {home} is not the worker's artifact store ({env.get('LMPIPE_HOME', 'LMPIPE_HOME unset')}): "
                   "a deployment run writes where the worker's LMPIPE_HOME says")
    if (cfg.crawl.allow_private or cfg.crawl.allow_networks) and env.get(ALLOW_PRIVATE_ENV) != "1":
        out.append(f"crawl.allow_private/allow_networks reach private addresses from the worker; the operator "
                   f"allows it with {ALLOW_PRIVATE_ENV}=1 in the worker's environment")
    roots = input_roots(env)
    for setting, path in _files(cfg):
        if "://" in path:
            continue
        real = Path(path).resolve()
        if not any(real == r or r in real.parents for r in roots):
            out.append(f"{setting} {path} is outside the worker's input roots ({', '.join(map(str, roots))}); "
                       f"the operator adds roots with {INPUT_ROOTS_ENV}")
    return out


def check(cfg: PipelineConfig, home: str | None = None, env: dict[str, str] | None = None) -> None:
    """Raise ``UserError`` naming every setting of a deployment run that the worker does not allow."""
    found = problems(cfg, home, env)
    if found:
        raise UserError("refused by the worker: " + "; ".join(found))


def from_deployment() -> bool:
    """True inside a flow run created from a deployment (a UI/API run executed by a worker)."""
    try:
        from prefect.runtime import deployment

        return deployment.id is not None
    except Exception:  # noqa: BLE001 -- no Prefect context: not a deployment run
        return False
