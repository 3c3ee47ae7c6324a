"""Launching pretraining on one or several nodes with torchrun.

One node: ``torchrun --standalone --nproc-per-node P`` (what the DAG always did for nproc > 1).

Several nodes (``pretrain.nnodes`` > 1): torchrun's static rendezvous, ``--nnodes N --node-rank K
--rdzv-backend static --rdzv-endpoint HOST:PORT``. HOST:PORT is a free port on node 0, where node 0's
torchrun hosts the rendezvous store; every node dials it. Static, not c10d: the c10d backend ignores
``--node-rank`` and numbers the nodes by host name, so the node that runs the DAG could lose global rank
0, and rank 0 is the one that writes checkpoints, the model directory and the stats line the DAG reads.
With static, node K runs global ranks K*P .. K*P+P-1, always.

Node 0 is launched with the full arguments (by the DAG, or by hand); every other node joins with

    python -m model.launch --nnodes N --node-rank K --nproc-per-node P --rdzv-endpoint HOST:PORT

which runs ``model.pretrain --join``: its ranks receive the token directory, output directory, config and
resume checkpoint from rank 0 through torchrun's rendezvous store (`exchange_args`), so the command is the
same for every run and names no artifact path. Every rank then checks that it sees the same token shards
as rank 0 (`shards_fingerprint`: meta.json and the shard sizes); if any node reads other data, every rank
stops with a clear error instead of training on it. Only global rank 0 writes (checkpoints, metrics,
the model directory). Paths must therefore name the same files on every node: a shared
file system (NFS, Lustre) for the artifact store, as on a Slurm cluster (scripts/pretrain.sbatch).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from model.config import PretrainConfig

log = logging.getLogger(__name__)

JOIN_FLAG = "--join"


def torchrun_args(nproc: int, nnodes: int = 1, node_rank: int = 0, rdzv_endpoint: str | None = None,
                  rdzv_id: str = "lmpipe-pretrain") -> list[str]:
    """torchrun's options (after ``python -m torch.distributed.run``) for one node of a run;
    an empty list when one process on one node needs no launcher at all."""
    if nnodes == 1:
        return [] if nproc == 1 else ["--standalone", f"--nproc-per-node={nproc}"]
    if not rdzv_endpoint or ":" not in rdzv_endpoint:
        raise ValueError(f"nnodes={nnodes} needs rdzv_endpoint='HOST:PORT' (a free port on node 0), "
                         f"got {rdzv_endpoint!r}")
    if not 0 <= node_rank < nnodes:
        raise ValueError(f"node_rank {node_rank} is not in [0, nnodes={nnodes})")
    return [f"--nnodes={nnodes}", f"--node-rank={node_rank}", f"--nproc-per-node={nproc}",
            "--rdzv-backend=static", f"--rdzv-endpoint={rdzv_endpoint}", f"--rdzv-id={rdzv_id}"]


def join_command(nproc: int, nnodes: int, rdzv_endpoint: str, node_rank: str | int = "K") -> str:
    """The command another node runs to join a multi-node run (K = its node rank, 1..nnodes-1)."""
    return (f"python -m model.launch --nnodes {nnodes} --node-rank {node_rank} --nproc-per-node {nproc} "
            f"--rdzv-endpoint {rdzv_endpoint}")


def node0_launch(cfg: PretrainConfig) -> list[str]:
    """torchrun's options for the node that runs the DAG. With nnodes > 1 it logs the command the other
    nodes run (they may start before or after it: node 0's torchrun waits for them at the rendezvous,
    up to the static backend's 600 s, then fails the stage), and refuses a node rank other than 0: the
    DAG writes the artifact, so it runs where global rank 0 does."""
    if cfg.nnodes > 1:
        join = join_command(cfg.nproc, cfg.nnodes, str(cfg.rdzv_endpoint))
        if cfg.node_rank != 0:
            mine = join_command(cfg.nproc, cfg.nnodes, str(cfg.rdzv_endpoint), cfg.node_rank)
            raise ValueError(f"the DAG runs on node 0 of a multi-node run (pretrain.node_rank=0); on node "
                             f"{cfg.node_rank} run: {mine}")
        log.warning("pretrain on %d nodes: this is node 0 (rendezvous %s); start each other node K=1..%d with:\n"
                    "    %s", cfg.nnodes, cfg.rdzv_endpoint, cfg.nnodes - 1, join)
    return torchrun_args(cfg.nproc, cfg.nnodes, cfg.node_rank, cfg.rdzv_endpoint)


def shards_fingerprint(tokens_dir: Path | str) -> str:
    """SHA-256 over meta.json's bytes and every shard file's name and size: cheap (no token is read), and
    any two different tokens artifacts differ in meta.json (counts, files) or in a shard's size."""
    root = Path(tokens_dir)
    h = hashlib.sha256((root / "meta.json").read_bytes())
    for path in sorted(root.glob("*.bin")) + sorted(root.glob("*.idx.npy")):
        h.update(f"{path.name}:{path.stat().st_size}\n".encode())
    return h.hexdigest()


def _run_store() -> Any:
    """A client of the rendezvous store that torchrun's agent on node 0 serves for the whole run
    (MASTER_ADDR:MASTER_PORT): usable before the process group exists, so before any rank knows the
    config that says which backend (gloo or nccl) to start."""
    from datetime import timedelta

    import torch.distributed as dist

    store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), is_master=False,
                          timeout=timedelta(minutes=10))
    # One namespace per run and restart, so a restarted or second run never reads stale keys.
    prefix = f"lmpipe/{os.environ.get('TORCHELASTIC_RUN_ID', '')}/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}/"
    return dist.PrefixStore(prefix, store)


def exchange_args(args: dict[str, Any] | None) -> dict[str, Any]:
    """Rank 0's run arguments for every rank, and a check that every rank sees rank 0's token shards.

    Ranks that joined without arguments (``args`` None) take rank 0's; ranks given arguments must have
    rank 0's config. Then every rank posts the fingerprint of the token directory it will read and reads
    everyone's: if any differs, every rank raises (one rank failing alone would leave the others waiting
    in a collective until its timeout). Every rank of the run calls this, under torchrun."""
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    if rank == 0 and args is None:
        raise ValueError(f"global rank 0 (node rank 0) must be started with --tokens/--out, not {JOIN_FLAG}")
    store = _run_store()
    if rank == 0:
        store.set("args", json.dumps(args))
    first = json.loads(store.get("args"))
    ours = first if args is None else args
    if ours["config"] != first["config"]:
        raise ValueError(f"rank {rank} was given another pretrain config than rank 0: {ours['config']} vs "
                         f"{first['config']}")
    try:
        mine = shards_fingerprint(ours["tokens"])
    except OSError as e:
        mine = f"unreadable: {e}"
    store.set(f"shards/{rank}", json.dumps([os.uname().nodename, mine]))
    everyone = [json.loads(store.get(f"shards/{r}")) for r in range(world)]
    differ = sorted({host for host, fp in everyone if fp != everyone[0][1]})
    if differ:
        raise ValueError(
            f"{ours['tokens']} on {', '.join(differ)} is not the token shards rank 0 reads on {everyone[0][0]} "
            "(meta.json or shard sizes differ, or missing): every node must see the same files (a shared file "
            "system for the artifact store)"
        )
    return ours


def _main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m model.launch", description="Join a multi-node pretraining run "
                                "whose node 0 was started with the run's arguments (by the DAG or by hand).")
    p.add_argument("--nnodes", type=int, required=True)
    p.add_argument("--node-rank", type=int, required=True, help="this node's rank, 1..nnodes-1")
    p.add_argument("--nproc-per-node", type=int, default=1, help="processes on this node (= pretrain.nproc)")
    p.add_argument("--rdzv-endpoint", required=True, help="HOST:PORT of node 0's rendezvous")
    p.add_argument("--rdzv-id", default="lmpipe-pretrain")
    a = p.parse_args(argv)
    if a.node_rank == 0:
        p.error("node rank 0 carries the run's arguments: launch it with the DAG or `torchrun ... -m model.pretrain`")
    launcher = torchrun_args(a.nproc_per_node, a.nnodes, a.node_rank, a.rdzv_endpoint, a.rdzv_id)
    cmd = [sys.executable, "-m", "torch.distributed.run", *launcher, "-m", "model.pretrain", JOIN_FLAG]
    print(json.dumps({"exec": cmd}), file=sys.stderr, flush=True)
    os.execv(sys.executable, cmd)  # torchrun replaces this process: its exit code is the node's


if __name__ == "__main__":
    sys.exit(_main())
