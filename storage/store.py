"""The artifact store: the only code in lmpipe that knows where stage outputs live.

Every stage output is an *artifact*: a directory holding the stage's files plus ``manifest.json``.
The manifest is written **last**; its presence is what marks an artifact complete. A stage writes into a
private ``.tmp-*`` directory that is renamed into place only after the manifest is in it, so a crash (even
``kill -9``) leaves a ``.tmp-*`` directory that nothing takes for finished work; it is removed on the next
run once the process that owned it is gone.

Artifact ids are content addressed: ``<kind>-<12 hex>`` where the hex is a SHA-256 over the kind, the stage
version, the resolved config and the sorted parent ids. Same inputs and config give the same id, so a finished
stage is found and skipped; one changed threshold gives a new id for that stage and everything downstream.

The root is ``$LMPIPE_HOME`` (default ``./lmpipe-data``) or any fsspec URL (``s3://bucket/lmpipe``,
``memory://x``). On a local root artifacts are built in place and renamed atomically; on a remote root they
are built in a local scratch directory, uploaded, and the manifest is uploaded last. On ``s3://`` a build's
finished files are also copied to a remote work area as they complete (a killed build resumes from there on
any host), leases are S3 objects written with conditional puts, and stages read their parents' shards in place
(`shard_paths`); see ``storage/remote.py`` for how, and for the limits.

Usage::

    store = ArtifactStore()                       # $LMPIPE_HOME or ./lmpipe-data
    aid = store.artifact_id("mix", "1", cfg, parents)
    manifest = store.build("mix", "1", cfg, parents, lambda out_dir: {"docs": 10})
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import re
import shutil

import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import fsspec

MANIFEST = "manifest.json"
TMP_PREFIX = ".tmp-"
LEASE_PREFIX = ".lease-"
# A build directory nobody owns is kept this long for a resume, then `clean_tmp` removes it.
STALE_BUILD_DAYS = 7
_ARTIFACT_ID = re.compile(r"[a-z_]+-[0-9a-f]{12}")
DEFAULT_HOME = "./lmpipe-data"


class ArtifactNotFound(LookupError):
    """Raised for an artifact id that has no complete manifest in the store."""


class ArtifactDamaged(RuntimeError):
    """Raised when a complete artifact's files no longer match its manifest (missing, other size or checksum)."""


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace: the byte string that ids are hashed from."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def compute_id(kind: str, stage_version: str, config: dict[str, Any], parents: list[str]) -> str:
    """Content-addressed artifact id: ``kind-<first 12 hex of sha256(kind, version, config, parents)>``.

    12 hex digits = 48 bits: a collision becomes likely only around 2**24 (16M) artifacts of one kind.
    """
    payload = canonical_json(
        {"kind": kind, "stage_version": str(stage_version), "config": config, "parents": sorted(parents)}
    )
    return f"{kind}-{hashlib.sha256(payload.encode('utf-8')).hexdigest()[:12]}"


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a local file or an fsspec URL, streamed in 1 MiB chunks."""
    if "://" in str(path):
        from storage.remote import file_digest

        return file_digest(path)[0]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def _code_revision() -> str | None:
    """The git commit of the lmpipe checkout, when there is one (recorded in every manifest)."""
    try:
        here = Path(__file__).resolve().parent.parent
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "--short=12", "HEAD"],
            capture_output=True, text=True, timeout=5,
        )
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _parquet_rows(path: Path) -> int | None:
    if path.suffix != ".parquet":
        return None
    try:
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    except Exception:  # a stage may write a file named .parquet that is not one; rows is optional
        return None


@dataclass(frozen=True)
class Manifest:
    """The parsed ``manifest.json`` of one complete artifact."""

    id: str
    kind: str
    stage_version: str
    config: dict[str, Any]
    parents: list[str]
    files: list[dict[str, Any]]
    stats: dict[str, Any]
    inputs: list[dict[str, Any]] = field(default_factory=list)
    created_at: str = ""
    seconds: float = 0.0
    code_revision: str | None = None
    flow_run_id: str | None = None
    code: dict[str, Any] = field(default_factory=dict)  # digest of the stage's modules and libraries
    path: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d.pop("path")
        return d

    def file_paths(self, suffix: str = "", exclude_dirs: tuple[str, ...] = ("removed",)) -> list[str]:
        """Full paths of the artifact's files ending in ``suffix``, skipping files under ``exclude_dirs``."""
        out = []
        for f in self.files:
            rel = f["path"]
            if rel.split("/", 1)[0] in exclude_dirs and "/" in rel:
                continue
            if rel.endswith(suffix):
                out.append(self.path.rstrip("/") + "/" + rel)
        return sorted(out)


class ArtifactStore:
    """Artifacts under one root directory or fsspec URL; see the module docstring."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        root = str(root) if root is not None else os.environ.get("LMPIPE_HOME", DEFAULT_HOME)
        # Object stores: no cached listings, or `exists()` would miss a manifest another process just wrote.
        options = {"use_listings_cache": False} if root.startswith(("s3://", "s3a://")) else {}
        self.fs, self._root = fsspec.core.url_to_fs(root, **options)
        self.is_local = "file" in (self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,))
        if self.is_local:
            self._root = os.path.abspath(self._root)
        self.fs.makedirs(self._root, exist_ok=True)
        self.url = root if not self.is_local else self._root

    # ---- paths -------------------------------------------------------------------------------------
    def path(self, artifact_id: str) -> str:
        """Where an artifact lives: ``<root>/<kind>/<id>``."""
        kind = artifact_id.rsplit("-", 1)[0]
        return f"{self._root}/{kind}/{artifact_id}"

    def artifact_id(self, kind: str, stage_version: str, config: dict[str, Any], parents: list[str]) -> str:
        return compute_id(kind, stage_version, config, parents)

    def shard_paths(self, manifest: Manifest, rel_paths: list[str]) -> list[str]:
        """Paths a stage can read the artifact's files from in place: local paths on a local root, fsspec URLs
        (``s3://…``) on a remote one (`storage.remote.open_input` streams them; nothing is downloaded whole)."""
        base = manifest.path.rstrip("/")
        if self.is_local:
            return [f"{base}/{rel}" for rel in rel_paths]
        return [self.fs.unstrip_protocol(f"{base}/{rel}") for rel in rel_paths]

    # ---- queries -----------------------------------------------------------------------------------
    def exists(self, artifact_id: str) -> bool:
        """True only for a complete artifact (its manifest is present)."""
        return self.fs.exists(f"{self.path(artifact_id)}/{MANIFEST}")

    def get(self, artifact_id: str) -> Manifest:
        """The manifest of a complete artifact; ``ArtifactNotFound`` otherwise."""
        mpath = f"{self.path(artifact_id)}/{MANIFEST}"
        if "-" not in artifact_id or not self.fs.exists(mpath):
            raise ArtifactNotFound(
                f"no artifact '{artifact_id}' in {self.url}; run `lmpipe artifacts` to list the ids there"
            )
        with self.fs.open(mpath, "r", encoding="utf-8") as f:
            data = json.load(f)
        return Manifest(path=self.path(artifact_id), **data)

    def verify(self, artifact_id: str, checksums: bool = True) -> list[str]:
        """What no longer matches the manifest: missing files, other sizes and (``checksums``) other SHA-256s;
        [] when the artifact is intact. Sizes cost one listing; checksums read every file."""
        m = self.get(artifact_id)
        try:
            listed = {Path(str(e["name"])).relative_to(self.path(artifact_id)).as_posix(): e.get("size")
                      for e in self.fs.find(self.path(artifact_id), detail=True).values()}
        except (OSError, ValueError):
            listed = {}
        problems = []
        for f in m.files:
            size = listed.get(f["path"])
            if size is None:
                problems.append(f"{f['path']} is missing")
            elif int(size) != int(f["bytes"]):
                problems.append(f"{f['path']} is {size} bytes, the manifest says {f['bytes']}")
            elif checksums:
                with self.fs.open(f"{self.path(artifact_id)}/{f['path']}", "rb") as fh:
                    digest = hashlib.sha256()
                    for block in iter(lambda: fh.read(1 << 20), b""):  # noqa: B023 -- called at once
                        digest.update(block)
                if digest.hexdigest() != f["sha256"]:
                    problems.append(f"{f['path']} has another SHA-256 than the manifest's")
        return problems

    def list(self, kind: str | None = None) -> list[Manifest]:
        """Every complete artifact, oldest first."""
        out: list[Manifest] = []
        for mpath in self.fs.glob(f"{self._root}/*/*/{MANIFEST}"):
            parts = mpath.rstrip("/").split("/")
            if parts[-2].startswith(TMP_PREFIX) or (kind and parts[-3] != kind):
                continue
            try:
                out.append(self.get(parts[-2]))
            except (ArtifactNotFound, json.JSONDecodeError, TypeError):
                continue
        return sorted(out, key=lambda m: m.created_at)

    def local_dir(self, artifact_id: str) -> Path:
        """A local directory with the artifact's files (the artifact itself on a local root, else a cached copy)."""
        if self.is_local:
            self.get(artifact_id)
            return Path(self.path(artifact_id))
        cache = Path(os.environ.get("LMPIPE_CACHE", Path(tempfile.gettempdir()) / "lmpipe-cache")) / artifact_id
        if not (cache / MANIFEST).exists():
            self.get(artifact_id)
            tmp = cache.with_name(f"{TMP_PREFIX}{artifact_id}-{uuid.uuid4().hex[:8]}")
            self.fs.get(self.path(artifact_id) + "/", str(tmp), recursive=True)
            if cache.exists():
                shutil.rmtree(cache)
            os.replace(tmp, cache)
        return cache

    # ---- writing -----------------------------------------------------------------------------------
    def work_dir(self, artifact_id: str) -> Path:
        """Where an artifact is built: the same path for the same id, so an interrupted build can be resumed
        (on a local root ``<root>/<kind>/.tmp-<id>``, renamed into place when complete)."""
        kind = artifact_id.rsplit("-", 1)[0]
        if self.is_local:
            return Path(self._root) / kind / f"{TMP_PREFIX}{artifact_id}"
        return Path(tempfile.gettempdir()) / "lmpipe-work" / f"{TMP_PREFIX}{artifact_id}"

    def lease_path(self, artifact_id: str) -> Path:
        return self.work_dir(artifact_id).with_name(f"{LEASE_PREFIX}{artifact_id}.json")

    def remote_work_dir(self, artifact_id: str) -> str:
        """On a remote root, where a build's finished files are kept for a resume: ``<root>/<kind>/.tmp-<id>``."""
        kind = artifact_id.rsplit("-", 1)[0]
        return f"{self._root}/{kind}/{TMP_PREFIX}{artifact_id}"

    def _lease(self, artifact_id: str, done: Callable[[], bool] | None) -> Any:
        """The lease context for a build: an S3 object with conditional writes where the server honours them
        (every host sees it), else a file beside the (local) build directory."""
        from storage import remote

        if not self.is_local and remote.is_s3(self.fs) and remote.conditional_writes(self.fs, self._root):
            kind = artifact_id.rsplit("-", 1)[0]
            path = f"{self._root}/{kind}/{LEASE_PREFIX}{artifact_id}.json"
            return remote.ObjectLease.acquire(self.fs, path, done=done)
        in_process = "memory" in remote.protocols(self.fs)  # memory:// lives in this process: a local lease is exact
        if not self.is_local and not in_process and not getattr(self, "_warned_lease", False):
            print(f"lmpipe: {self.url} offers no conditional writes: build leases hold on this host only",
                  file=sys.stderr)
            self._warned_lease = True
        return Lease.acquire(self.lease_path(artifact_id), done=done)

    def clean_tmp(self) -> int:
        """Remove build directories nobody will use again; returns how many.

        Never one whose lease has a live owner (`Lease`): a corpus refresh on one worker must not delete a
        pretrain that a GPU worker is building on the same volume. A build directory without a live owner is
        kept for resuming (its completed shards are reused), unless its artifact is complete now or it is
        older than `STALE_BUILD_DAYS`. Old-style directories (``.tmp-<id>-<host>-<pid>-<rand>``) go when
        their process on this host is gone (other hosts' after `STALE_BUILD_DAYS`).
        """
        if not self.is_local:
            return self._clean_remote_tmp()
        removed = 0
        cutoff = time.time() - STALE_BUILD_DAYS * 86400
        for kind_dir in Path(self._root).iterdir() if Path(self._root).exists() else []:
            if not kind_dir.is_dir():
                continue
            for d in kind_dir.glob(f"{TMP_PREFIX}*"):
                name = d.name[len(TMP_PREFIX):]
                try:
                    old = d.stat().st_mtime < cutoff
                except OSError:
                    continue
                if _ARTIFACT_ID.fullmatch(name):  # a resumable build directory
                    lease = Lease.read(self.lease_path(name))
                    if lease is not None and lease.alive():
                        continue
                    if not (self.exists(name) or old):
                        continue
                else:  # old-style: .tmp-<id>-<host>-<pid>-<rand> (or .tmp-old-…, a replaced artifact)
                    bits = d.name.split("-")
                    try:
                        host, pid = bits[-3], int(bits[-2])
                    except (IndexError, ValueError):
                        host, pid = "", -1
                    if host == _hostname() and pid > 0 and _pid_alive(pid) and pid != os.getpid():
                        continue
                    if host != _hostname() and host and not old:
                        continue
                shutil.rmtree(d, ignore_errors=True)
                removed += 1
        return removed

    def _clean_remote_tmp(self) -> int:
        """Remote work areas of artifacts that are complete now (a publish that was killed before its cleanup)."""
        removed = 0
        for d in self.fs.glob(f"{self._root}/*/{TMP_PREFIX}*"):
            name = d.rstrip("/").rsplit("/", 1)[-1][len(TMP_PREFIX):]
            if _ARTIFACT_ID.fullmatch(name) and self.exists(name):
                self.fs.rm(d, recursive=True)
                removed += 1
        return removed

    def build(
        self,
        kind: str,
        stage_version: str,
        config: dict[str, Any],
        parents: list[str],
        fn: Callable[[Path], dict[str, Any]],
        *,
        inputs: list[dict[str, Any]] | None = None,
        refresh: bool = False,
        flow_run_id: str | None = None,
        resumable: bool = False,
        code: dict[str, Any] | None = None,
    ) -> tuple[Manifest, bool]:
        """Return the artifact for these inputs, computing it with ``fn(out_dir) -> stats`` when needed.

        Returns ``(manifest, built)``; ``built`` is False when a complete artifact was already there.
        ``refresh=True`` recomputes and then replaces the existing artifact. ``out_dir`` is the same directory
        for the same id (`work_dir`), held through a `Lease`: a second build of the same id waits for the first
        and then returns its artifact. With ``resumable``, what an interrupted build left there is kept for
        ``fn`` to reuse (sharded stages skip their completed shards); otherwise it starts empty. ``code`` (the
        stage's code digest, ``flows.provenance``) is recorded in the manifest, outside the id.

        A complete artifact is reused only when its files still have the sizes its manifest gives
        (``ArtifactDamaged`` otherwise; ``verify`` also compares checksums).
        """
        aid = compute_id(kind, stage_version, config, parents)
        if not refresh and self.exists(aid):
            found = self.get(aid)
            problems = self.verify(aid, checksums=False)
            if problems:
                raise ArtifactDamaged(f"artifact {aid} is damaged: {'; '.join(problems[:3])}; rebuild it with "
                                      f"`lmpipe run ... --refresh {kind}` (or remove {self.path(aid)})")
            return found, False
        for p in parents:
            if not self.exists(p):
                raise ArtifactNotFound(f"parent artifact '{p}' of {aid} is missing; re-run without --from")
        with self._lease(aid, None if refresh else lambda: self.exists(aid)) as lease:
            if lease is None:  # another process built it while we waited
                return self.get(aid), False
            check = getattr(lease, "check", None)
            return self._build_in(aid, kind, stage_version, config, parents, fn, inputs, flow_run_id, resumable,
                                  check, code), True

    def _build_in(self, aid: str, kind: str, stage_version: str, config: dict[str, Any], parents: list[str],
                  fn: Callable[[Path], dict[str, Any]], inputs: list[dict[str, Any]] | None,
                  flow_run_id: str | None, resumable: bool, check: Callable[[], None] | None = None,
                  code: dict[str, Any] | None = None) -> Manifest:
        t0 = time.time()
        tmp = self.work_dir(aid)
        if tmp.exists() and not resumable:
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True, exist_ok=True)
        mirror = None
        if resumable and not self.is_local:  # finished shards go to the bucket as they complete (storage/remote.py)
            from storage.remote import WorkMirror

            mirror = WorkMirror(self.fs, self.remote_work_dir(aid), tmp)
            mirror.restore()
        try:
            with mirror if mirror is not None else contextlib.nullcontext():
                stats = fn(tmp) or {}
            files = []
            for f in sorted(p for p in tmp.rglob("*") if p.is_file()):
                rel = f.relative_to(tmp).as_posix()
                entry: dict[str, Any] = {"path": rel, "bytes": f.stat().st_size, "sha256": sha256_file(f)}
                rows = _parquet_rows(f)
                if rows is not None:
                    entry["rows"] = rows
                files.append(entry)
            manifest = {
                "id": aid,
                "kind": kind,
                "stage_version": str(stage_version),
                "config": config,
                "parents": sorted(parents),
                "inputs": inputs or [],
                "files": files,
                "stats": json.loads(canonical_json(stats)),
                "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "seconds": round(time.time() - t0, 3),
                "code_revision": _code_revision(),
                "flow_run_id": flow_run_id,
                "code": code or {},
            }
            if check is not None:
                check()
            self._publish(aid, tmp, manifest, mirror)
        except BaseException:
            if not resumable:
                shutil.rmtree(tmp, ignore_errors=True)
            raise
        return self.get(aid)

    def _publish(self, aid: str, tmp: Path, manifest: dict[str, Any], mirror: Any = None) -> None:
        """Write the manifest last and move the directory into place (atomically on a local root)."""
        final = self.path(aid)
        if self.is_local:
            mtmp = tmp / (MANIFEST + ".part")
            with open(mtmp, "w", encoding="utf-8") as f:
                json.dump(manifest, f, indent=2, ensure_ascii=False)
                f.flush()
                os.fsync(f.fileno())
            os.replace(mtmp, tmp / MANIFEST)
            old = None
            if os.path.exists(final):  # refresh: move the old one aside first; rename of a dir is atomic
                old = (f"{os.path.dirname(final)}/{TMP_PREFIX}old-{aid}-{_hostname()}-{os.getpid()}-"
                       f"{uuid.uuid4().hex[:8]}")
                os.replace(final, old)
            os.replace(tmp, final)
            if old:
                shutil.rmtree(old, ignore_errors=True)
            return
        # Remote root: drop any previous manifest first so the old artifact stops claiming completeness,
        # upload the files (a server-side copy of those the remote work area holds unchanged), then the manifest.
        if self.fs.exists(f"{final}/{MANIFEST}"):
            self.fs.rm(f"{final}/{MANIFEST}")
        self.fs.makedirs(final, exist_ok=True)
        for f in sorted(p for p in tmp.rglob("*") if p.is_file()):
            rel = f.relative_to(tmp).as_posix()
            self.fs.makedirs(f"{final}/{rel}".rsplit("/", 1)[0], exist_ok=True)
            if mirror is not None and mirror.synced(rel):
                self.fs.copy(f"{mirror.remote}/{rel}", f"{final}/{rel}")
            else:
                self.fs.put_file(str(f), f"{final}/{rel}")
        with self.fs.open(f"{final}/{MANIFEST}", "w", encoding="utf-8") as f:
            f.write(json.dumps(manifest, indent=2, ensure_ascii=False))
        if mirror is not None:
            mirror.discard()
        shutil.rmtree(tmp, ignore_errors=True)

    # ---- named refs --------------------------------------------------------------------------------
    # A ref is a small JSON file ``<root>/refs/<name>.json`` naming an artifact (e.g. ``refs/corpus.json``: the
    # current corpus version). Artifacts are immutable; refs are the only thing in the store that moves.
    def ref_path(self, name: str) -> str:
        return f"{self._root}/refs/{name}.json"

    def read_ref(self, name: str) -> dict[str, Any] | None:
        """The ref's JSON, or None when it was never written."""
        path = self.ref_path(name)
        if not self.fs.exists(path):
            return None
        with self.fs.open(path, "r", encoding="utf-8") as f:
            return json.load(f)

    def write_ref(self, name: str, data: dict[str, Any]) -> None:
        """Replace the ref in one step: local roots write a temporary file and rename it (a reader sees the old
        ref or the new one, never half of one); on object stores a single PUT is atomic already."""
        path = self.ref_path(name)
        text = json.dumps(data, indent=2, ensure_ascii=False)
        if not self.is_local:
            self.fs.pipe(path, text.encode("utf-8"))
            return
        os.makedirs(os.path.dirname(path), exist_ok=True)
        part = f"{os.path.dirname(path)}/.{name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.part"  # not .tmp-*: see clean_tmp
        with open(part, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(part, path)

    # ---- lineage -----------------------------------------------------------------------------------
    def ancestors(self, artifact_id: str) -> Iterator[Manifest]:
        """The artifact and every ancestor, each once, depth first."""
        seen: set[str] = set()
        stack = [artifact_id]
        while stack:
            aid = stack.pop()
            if aid in seen:
                continue
            seen.add(aid)
            m = self.get(aid)
            yield m
            stack.extend(reversed(m.parents))


def _hostname() -> str:
    return socket.gethostname().replace("-", "_") or "host"


# How often a lease's owner rewrites its heartbeat, and after how long without one a lease of another host
# counts as abandoned (a lease of this host is abandoned as soon as its process is gone).
HEARTBEAT_SECONDS = 10.0
LEASE_TIMEOUT_SECONDS = 120.0


@dataclass(frozen=True)
class Lease:
    """Who builds an artifact now: host, pid and a heartbeat, in ``<kind>/.lease-<id>.json`` beside its build
    directory. Created with O_EXCL (one owner at a time); a waiting process takes over only an abandoned one."""

    host: str
    pid: int
    heartbeat: float
    started: float

    @staticmethod
    def read(path: Path) -> Lease | None:
        try:
            data = json.loads(path.read_text())
            return Lease(str(data["host"]), int(data["pid"]), float(data["heartbeat"]), float(data["started"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def alive(self) -> bool:
        if self.host == _hostname():
            return _pid_alive(self.pid)
        return time.time() - self.heartbeat < LEASE_TIMEOUT_SECONDS

    @staticmethod
    @contextlib.contextmanager
    def acquire(path: Path, done: Callable[[], bool] | None = None, poll: float = 1.0) -> Iterator[Lease | None]:
        """Hold the lease at ``path`` for the ``with`` block (yields it), heartbeating in a thread.

        While another live process holds it, wait; yields None instead when ``done()`` turns true meanwhile
        (that process completed the work). An abandoned lease (owner gone) is taken over.
        """
        path.parent.mkdir(parents=True, exist_ok=True)
        waited = False
        while True:
            now = time.time()
            mine = Lease(_hostname(), os.getpid(), now, now)
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                held = Lease.read(path)
                if held is not None and held.pid == os.getpid() and held.host == _hostname():
                    raise RuntimeError(
                        f"{path} is already held by this process (a stage built inside itself?)") from None
                if held is None or not held.alive():
                    # Abandoned (or half-written by a process killed while creating it): move it away atomically.
                    with contextlib.suppress(OSError):
                        if held is None and time.time() - path.stat().st_mtime < 5:
                            time.sleep(poll)  # possibly being written right now: look again
                            continue
                        os.replace(path, path.with_name(f"{path.name}.stale-{uuid.uuid4().hex[:8]}"))
                        for stale in path.parent.glob(f"{path.name}.stale-*"):
                            stale.unlink(missing_ok=True)
                    continue
                if done is not None and done():
                    yield None
                    return
                if not waited:
                    print(f"lmpipe: {path.name[len(LEASE_PREFIX):-5]} is being built by pid {held.pid} on "
                          f"{held.host}; waiting for it", file=sys.stderr)
                    waited = True
                time.sleep(poll)
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(mine.__dict__, f)
            break
        if done is not None and done():  # completed between our check and our lease
            path.unlink(missing_ok=True)
            yield None
            return
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(HEARTBEAT_SECONDS):
                part = path.with_name(f".{path.name}.{os.getpid()}.part")
                with contextlib.suppress(OSError):
                    part.write_text(json.dumps({**mine.__dict__, "heartbeat": time.time()}))
                    os.replace(part, path)

        thread = threading.Thread(target=beat, daemon=True)
        thread.start()
        try:
            yield mine
        finally:
            stop.set()
            thread.join()
            path.unlink(missing_ok=True)
