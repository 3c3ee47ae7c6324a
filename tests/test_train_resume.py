"""Pretrain and SFT resume through the DAG: a run killed (kill -9 of its process group) or failed after a
checkpoint, run again with the same command, continues from the checkpoint its build directory kept and
ends with the very same weights, bit for bit, as a run that was never stopped.

The DAG tests run `python -m flows.cli run ... --preset tiny --no-prefect` as subprocesses on CPU; one
module fixture builds the corpus, tokenizer, tokens and a base pretrain model once (~20 s), every run
copies that home (each test ~20-50 s on 2 loaded cores). The kill -9 tests are marked `e2e` (.ci/run runs
them), the failed-stage and Prefect re-run tests `slow`. The checkpoint swap and the SFT batch order are checked
in-process (fast, default run).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from procs import children
import torch
from safetensors.torch import load_file

from model import checkpoint
from model.config import GPTConfig, PretrainConfig
from model.gpt import GPT
from model.sft import ShuffledBatches
from storage.store import ArtifactStore

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "flows.cli"]
COMMON = ["--preset", "tiny", "--no-prefect", "--no-generate", "--workers", "1"]
# Checkpoints every step, so the kill lands anywhere: between steps, while writing checkpoint.part, or in the
# middle of the swap.
PRETRAIN = ["--set", "pretrain.steps=40", "--set", "pretrain.checkpoint_every=1"]
SFT = ["--set", "sft.steps=30", "--set", "sft.checkpoint_every=1"]
BASE_IDS: set[str] = set()  # the models of the `base` home, which every test home starts from


# --- in-process: the crash-safe swap and the SFT batch order ------------------------------------------

def _save(ckpt: Path, step: int) -> None:
    model = GPT(GPTConfig.from_depth(1, 64, 16))
    opt = torch.optim.AdamW(model.parameters())
    checkpoint.save_training_state(ckpt, step, model, checkpoint.model_state(model),
                                   checkpoint.optimizer_state(model, opt), {"pos": step}, [1.0] * step,
                                   PretrainConfig())


def test_checkpoint_swap_leaves_one_complete_checkpoint_at_every_point(tmp_path: Path) -> None:
    ckpt = tmp_path / checkpoint.CHECKPOINT
    assert checkpoint.latest_checkpoint(tmp_path) is None
    _save(ckpt, 1)
    _save(ckpt, 2)  # replaces step 1: no .old or .part left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]
    assert json.loads((checkpoint.latest_checkpoint(tmp_path) / "state.json").read_text())["step"] == 2

    # A kill between "old aside" and "new in": checkpoint.old is complete, checkpoint.part may be too.
    ckpt.rename(tmp_path / "checkpoint.old")
    _save(tmp_path / "elsewhere", 3)
    (tmp_path / "elsewhere").rename(tmp_path / "checkpoint.part")
    assert checkpoint.latest_checkpoint(tmp_path) == tmp_path / "checkpoint.old"
    # The next save (of the resumed run) goes in as checkpoint and removes the stale siblings.
    _save(ckpt, 4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]

    # Files of two saves (a checkpoint copied file by file) are refused, not resumed from.
    _save(tmp_path / "other", 5)
    shutil.copy(tmp_path / "other" / "optimizer.pt", ckpt / "optimizer.pt")
    with pytest.raises(ValueError, match="mixes files of different saves"):
        checkpoint.read_training_state(ckpt, GPT(GPTConfig.from_depth(1, 64, 16)))
    shutil.rmtree(tmp_path / "other")

    # A half-written checkpoint.part (kill while saving) is never taken.
    (tmp_path / "checkpoint.part").mkdir()
    (tmp_path / "checkpoint.part" / "model.safetensors").write_bytes(b"cut")
    assert checkpoint.latest_checkpoint(tmp_path) == ckpt
    (ckpt / "state.json").unlink()  # an incomplete directory is not a checkpoint either
    assert checkpoint.latest_checkpoint(tmp_path) is None
    checkpoint.remove_checkpoints(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_sft_batch_order_resumes_exactly() -> None:
    examples = [([i, i + 1], [0, 1]) for i in range(7)]  # 7 examples, batches of 3: epochs cut batches
    straight = ShuffledBatches(examples, 3, np.random.default_rng(5))
    first = [next(straight) for _ in range(4)]
    state = json.loads(json.dumps(straight.state_dict()))  # it travels in state.json
    rest = [next(straight) for _ in range(6)]
    resumed = ShuffledBatches(examples, 3, np.random.default_rng(99))
    resumed.load_state_dict(state)
    assert [next(resumed) for _ in range(6)] == rest and first != rest[:4]
    with pytest.raises(ValueError, match="training conversations"):
        ShuffledBatches(examples[:5], 3, np.random.default_rng(5)).load_state_dict(state)


# --- through the DAG (CLI subprocesses) ---------------------------------------------------------------

def _lmpipe(home: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([*CLI, "--home", str(home), "run", *args, *COMMON], cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def _finish(proc: subprocess.Popen) -> tuple[int, str]:
    try:
        _, err = proc.communicate(timeout=600)
    finally:
        _stop(proc)
    return proc.returncode, err


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()


def _run(home: Path, *args: str) -> None:
    code, err = _finish(_lmpipe(home, *args))
    assert code == 0, err[-3000:]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A home holding the tiny corpus, tokenizer, tokens and base pretrain model; their ids."""
    home = tmp_path_factory.mktemp("base")
    _run(home, "pipeline", "--set", "quality_model.positives=[]", "--set", "sft.steps=1")
    store = ArtifactStore(home)
    BASE_IDS.update(a.id for kind in ("pretrain", "sft") for a in store.list(kind))
    return {"home": home, "tokens": store.list("tokens")[0].id, "pretrain": store.list("pretrain")[0].id,
            "sft": store.list("sft")[0].id}


def _copy(base: dict[str, object], to: Path) -> Path:
    shutil.copytree(base["home"], to)  # type: ignore[arg-type]
    return to


def _progress(home: Path, kind: str) -> tuple[bool, int]:
    """(a complete checkpoint is there, steps logged so far) of the build directory of `kind`."""
    for tmp in home.glob(f"{kind}/.tmp-*"):
        metrics = tmp / "metrics.jsonl"
        steps = len(metrics.read_text().splitlines()) if metrics.exists() else 0
        return checkpoint.latest_checkpoint(tmp) is not None, steps
    return False, 0


def _wait_then(proc: subprocess.Popen, home: Path, kind: str, at_step: int) -> None:
    """Wait until the run has a checkpoint and has logged `at_step` steps."""
    deadline = time.monotonic() + 600
    while True:
        assert proc.poll() is None, f"the run ended before step {at_step}: {proc.communicate()[1][-2000:]}"
        assert time.monotonic() < deadline, "no progress"
        has_ckpt, steps = _progress(home, kind)
        if has_ckpt and steps >= at_step:
            return
        time.sleep(0.01)


def _artifact(home: Path, kind: str) -> tuple[dict[str, object], dict[str, torch.Tensor], bytes, list[float]]:
    """Stats, weights, weight file bytes and per-step losses of the one `kind` artifact not copied from base."""
    store = ArtifactStore(home)
    (m,) = [a for a in store.list(kind) if a.id not in BASE_IDS]
    d = store.local_dir(m.id)
    assert not [f for f in m.files if f["path"].startswith("checkpoint")], "resume state leaked into the artifact"
    assert not list(home.glob(f"{kind}/.tmp-*")), "the build directory outlived the published artifact"
    losses = [json.loads(ln)["loss"] for ln in (d / "metrics.jsonl").read_text().splitlines()]
    return m.stats, load_file(str(d / "model.safetensors")), (d / "model.safetensors").read_bytes(), losses


def _same(a: tuple, b: tuple) -> None:
    assert a[2] == b[2], "model.safetensors differs from the uninterrupted run's"
    assert a[1].keys() == b[1].keys() and all(torch.equal(a[1][k], b[1][k]) for k in a[1])
    assert a[3] == b[3], "metrics.jsonl (losses per step) differs from the uninterrupted run's"
    assert a[0]["final_loss"] == b[0]["final_loss"] and a[0]["first_loss"] == b[0]["first_loss"]


@pytest.fixture(scope="module")
def straight_pretrain(base: dict[str, object], tmp_path_factory: pytest.TempPathFactory) -> tuple:
    home = _copy(base, tmp_path_factory.mktemp("straight") / "home")
    _run(home, "pretrain", "--from", str(base["tokens"]), *PRETRAIN)
    art = _artifact(home, "pretrain")
    assert art[0]["resumed_from_step"] is None and len(art[3]) == 40
    return art


@pytest.mark.e2e  # ~20-40 s on 2 CPU cores: run by .ci/run, not the default set
def test_pretrain_killed_at_a_random_step_resumes_bit_identical(base, straight_pretrain, tmp_path: Path) -> None:
    home = _copy(base, tmp_path / "home")
    resumed = _killed_then_rerun(base, home, "pretrain", ("--from", str(base["tokens"]), *PRETRAIN), 30)
    _same(resumed, straight_pretrain)


def _killed_then_rerun(base: dict, home: Path, stage: str, args: tuple[str, ...], last: int) -> tuple:
    """Run `stage`, kill -9 the whole run at a random step in 2..`last` (the orchestrator and the trainer,
    mid-step or mid-save), check nothing new was published, run the same command again; its artifact."""
    at = random.randint(2, last)
    proc = _lmpipe(home, stage, *args)
    try:
        _wait_then(proc, home, stage, at)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        _stop(proc)
    assert [a.id for a in ArtifactStore(home).list(stage)] == [base[stage]]
    _run(home, stage, *args)
    resumed = _artifact(home, stage)
    assert resumed[0]["resumed_from_step"] is not None and resumed[0]["resumed_from_step"] >= at - 1, at
    return resumed


@pytest.mark.slow  # ~20-30 s more on 2 CPU cores; the kill -9 tests cover the default run
def test_pretrain_failed_stage_keeps_its_checkpoint_and_resumes(base, straight_pretrain, tmp_path: Path) -> None:
    """The trainer dies under a living orchestrator: the stage fails with an exception (not a kill of the run),
    the build directory and its checkpoint stay, and the re-run continues from it."""
    home = _copy(base, tmp_path / "home")
    proc = _lmpipe(home, "pretrain", "--from", str(base["tokens"]), *PRETRAIN)
    try:
        _wait_then(proc, home, "pretrain", random.randint(2, 30))
        trainers = [c for c in children(proc.pid) if b"model.pretrain" in Path(f"/proc/{c}/cmdline").read_bytes()]
        assert len(trainers) == 1
        os.kill(trainers[0], signal.SIGKILL)
        code, err = _finish(proc)
    finally:
        _stop(proc)
    assert code != 0 and "model.pretrain" in err and "exited with code" in err, err[-2000:]
    (tmp,) = home.glob("pretrain/.tmp-*")
    kept = checkpoint.latest_checkpoint(tmp)
    assert kept is not None
    step = json.loads((kept / "state.json").read_text())["step"]
    _run(home, "pretrain", "--from", str(base["tokens"]), *PRETRAIN)
    resumed = _artifact(home, "pretrain")
    assert resumed[0]["resumed_from_step"] == step
    _same(resumed, straight_pretrain)


@pytest.mark.e2e  # ~20-40 s on 2 CPU cores: run by .ci/run, not the default set
def test_sft_killed_at_a_random_step_resumes_bit_identical(base, tmp_path: Path) -> None:
    straight_home = _copy(base, tmp_path / "straight")
    _run(straight_home, "sft", "--from", str(base["pretrain"]), *SFT)
    straight = _artifact(straight_home, "sft")
    assert straight[0]["resumed_from_step"] is None and len(straight[3]) == 30

    home = _copy(base, tmp_path / "killed")
    resumed = _killed_then_rerun(base, home, "sft", ("--from", str(base["pretrain"]), *SFT), 22)
    _same(resumed, straight)
    assert resumed[0]["val_loss"] == straight[0]["val_loss"]
    assert resumed[0]["val_loss_initial"] == straight[0]["val_loss_initial"]


@pytest.mark.slow  # ~20-30 s more on 2 CPU cores; the kill -9 tests cover the default run
def test_prefect_rerun_resumes_the_checkpoint_a_killed_run_left(base, straight_pretrain, prefect_harness,
                                                                tmp_path: Path) -> None:
    """The Prefect flow builds through the same run_stage: after a kill it continues from the kept checkpoint."""
    from flows.prefect_flows import pretrain_flow

    home = _copy(base, tmp_path / "home")
    proc = _lmpipe(home, "pretrain", "--from", str(base["tokens"]), *PRETRAIN)
    try:
        _wait_then(proc, home, "pretrain", random.randint(2, 30))
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        _stop(proc)
    overrides = {PRETRAIN[i + 1].split("=")[0]: PRETRAIN[i + 1].split("=")[1] for i in range(0, len(PRETRAIN), 2)}
    out = pretrain_flow(preset="tiny", home=str(home), from_artifact=str(base["tokens"]), overrides=overrides)
    resumed = _artifact(home, "pretrain")
    assert out["pretrain"]["id"] not in BASE_IDS and resumed[0]["resumed_from_step"] is not None
    _same(resumed, straight_pretrain)
