"""The artifact store on object storage (``--home s3://bucket/prefix``): streamed reads and digests of URLs, the
remote work area that lets a killed build resume on any host, and leases made with S3 conditional writes.

* **Reading in place.** `open_input` opens a local path or an fsspec URL for reading; Parquet shards are read
  through it by pyarrow in row groups (ranged GETs), so a stage never downloads its parent whole.
* **Remote work area** (`WorkMirror`). A build runs in a local scratch directory (datatrove's executors, the
  Parquet writers and the completion markers all want a local path) that a thread copies to
  ``<root>/<kind>/.tmp-<id>/`` every `SYNC_SECONDS` (``$LMPIPE_SYNC_SECONDS``). Files go up in the order they
  were last written, and only files unchanged for half that time; a rank's completion marker is written after
  its shards, so the bucket never holds a marker whose shards are missing or half written. A rerun first makes
  its local scratch a copy of the bucket's work area (fetching only what differs), so the executors' resume
  check (completion markers) skips the finished shards whichever host reruns it. At publishing, files the
  bucket already holds unchanged are copied server side.
* **Leases** (`ObjectLease`). ``<root>/<kind>/.lease-<id>.json`` is created with ``If-None-Match: *`` (one
  creator wins), its heartbeat is rewritten with ``If-Match: <its ETag>``, an abandoned one is taken over with
  ``If-Match`` on the ETag that was judged abandoned (of two waiters only one wins), and it is deleted with
  ``If-Match``. Tested against moto's S3 server; AWS S3 documents both conditions for PutObject (2024).
  `conditional_writes` probes the server once (a second ``If-None-Match`` put must be refused); a server that
  ignores them gets a lease on this host only (`storage.store.Lease`, with a warning): then two hosts may build
  the same artifact at once. Their outputs are the same bytes (ids are content addressed) but the work is done
  twice: run one orchestrator per store on such servers.

Limits: an owner whose heartbeat stops for `LEASE_TIMEOUT_SECONDS` (a paused VM) loses its lease; it notices at
its next heartbeat and refuses to publish. Clock skew between hosts counts against that timeout. A resume
fetches the finished shards of the interrupted stage itself (never its parent's) back to the local scratch.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import fsspec

# The remote work area is refreshed every SYNC_SECONDS ($LMPIPE_SYNC_SECONDS); a file changed less than half of
# that ago waits for the next round (a shard still being written would otherwise be uploaded many times over).
# A kill loses at most the shards finished in the last ~1.5 rounds; each round is one local walk plus one PUT
# per changed file.
SYNC_SECONDS = 2.0
CHUNK = 8 << 20  # 8 MiB per read when hashing a URL: few round trips, bounded memory


def is_url(path: str | os.PathLike[str]) -> bool:
    """True for an fsspec URL other than ``file://`` (those are local paths)."""
    text = str(path)
    return "://" in text and not text.startswith("file://")


def open_input(path: str | os.PathLike[str]) -> IO[bytes]:
    """A binary file object for a local path or an fsspec URL (``s3://…``), to be closed by the caller."""
    text = str(path)
    if is_url(text):
        return fsspec.open(text, "rb").open()
    return open(text[len("file://"):] if text.startswith("file://") else text, "rb")


# URL digests already computed by this process, by (URL, ETag or modification time, size): a run plans its ids
# several times (plan, precheck, build), and rereading a 1 GB object each time would cost 1 GB of GETs.
_DIGESTS: dict[tuple[str, str, int], tuple[str, int]] = {}


def file_digest(path: str | os.PathLike[str]) -> tuple[str, int]:
    """(SHA-256, bytes) of a local file or a URL, streamed in `CHUNK` reads (never the whole file in memory)."""
    key = None
    if is_url(path):
        fs, stripped = fsspec.core.url_to_fs(str(path))
        fs.invalidate_cache(stripped)  # a listing cached by a glob would hide a rewritten object
        info = fs.info(stripped)
        version = info.get("ETag") or info.get("mtime") or info.get("LastModified")
        if version:
            key = (str(path), str(version), int(info.get("size") or 0))
            if key in _DIGESTS:
                return _DIGESTS[key]
    h = hashlib.sha256()
    size = 0
    with open_input(path) as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
    if key is not None:
        _DIGESTS[key] = (h.hexdigest(), size)
    return h.hexdigest(), size


def protocols(fs: Any) -> tuple[str, ...]:
    return fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)


def is_s3(fs: Any) -> bool:
    return bool({"s3", "s3a"} & set(protocols(fs)))


# ------------------------------------------------------------------------------------------ remote work area


class WorkMirror:
    """Keeps the remote work area ``remote`` up to date with the local build directory ``local`` (see module doc).

    ``with mirror:`` syncs in a thread; `restore` fetches what an earlier, interrupted build left in the bucket.
    """

    def __init__(self, fs: Any, remote: str, local: Path) -> None:
        self.fs, self.remote, self.local = fs, remote.rstrip("/"), local
        self._synced: dict[str, tuple[int, int]] = {}  # relative path -> (size, mtime_ns) of what the bucket holds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._warned = False
        self.every = float(os.environ.get("LMPIPE_SYNC_SECONDS") or SYNC_SECONDS)

    def _local_files(self) -> list[tuple[int, str, tuple[int, int]]]:
        """(mtime_ns, relative path, (size, mtime_ns)) of every local file, oldest first; ``.part`` files (being
        written, renamed in a moment) are left out."""
        out = []
        for top, _dirs, names in os.walk(self.local):  # os.walk skips a directory removed while it walks
            for name in names:
                if name.endswith(".part"):
                    continue
                path = Path(top) / name
                try:
                    st = path.stat()
                except OSError:  # removed while we looked
                    continue
                out.append((st.st_mtime_ns, path.relative_to(self.local).as_posix(), (st.st_size, st.st_mtime_ns)))
        return sorted(out)

    def restore(self) -> int:
        """Make the local directory what the remote work area holds, and return how many files were fetched.

        The bucket is the reference: what it holds is consistent (a marker is never there without its shards),
        while a local scratch left by a kill may hold half-written files, or predate a later attempt on
        another host. A local file of the same size is kept instead of fetched; local files the bucket lacks
        are removed (their shards run again).
        """
        held: dict[str, tuple[str, int]] = {}
        if self.fs.exists(self.remote):
            prefix = self.fs._strip_protocol(self.remote).rstrip("/") + "/"
            for path, info in self.fs.find(self.remote, detail=True).items():
                if path.startswith(prefix):
                    held[path[len(prefix):]] = (path, int(info.get("size") or 0))
        fetched = 0
        for _, rel, (size, _mtime) in self._local_files():
            if rel not in held or held[rel][1] != size:
                (self.local / rel).unlink(missing_ok=True)
        for rel, (path, _size) in sorted(held.items()):
            target = self.local / rel
            if target.exists():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            part = target.with_name(f"{target.name}.{uuid.uuid4().hex[:8]}.part")
            self.fs.get_file(path, str(part))
            os.replace(part, target)
            fetched += 1
        for _, rel, sig in self._local_files():  # all of it is in the bucket already
            self._synced[rel] = sig
        return fetched

    def sync(self, settled_only: bool = True) -> int:
        """Upload the files changed since their last upload, oldest first, stopping at the first one written less
        than half a sync interval ago (``settled_only=False``: upload everything). Returns the number uploaded."""
        cutoff = (time.time() - self.every / 2) * 1e9 if settled_only else None
        uploaded = 0
        for mtime, rel, sig in self._local_files():
            if cutoff is not None and mtime > cutoff:
                break  # everything after it is newer still: next round (keeps "written before" = "uploaded before")
            if self._synced.get(rel) == sig:
                continue
            try:
                self.fs.put_file(str(self.local / rel), f"{self.remote}/{rel}")
            except FileNotFoundError:  # removed locally meanwhile (a scratch file): nothing to keep
                continue
            self._synced[rel] = sig
            uploaded += 1
        return uploaded

    def synced(self, rel: str) -> bool:
        """True when the bucket holds this local file as it is now."""
        try:
            st = (self.local / rel).stat()
        except OSError:
            return False
        return self._synced.get(rel) == (st.st_size, st.st_mtime_ns)

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.sync()
            except Exception as e:  # noqa: BLE001 -- a failed upload costs resumability, never the build
                if not self._warned:
                    print(f"lmpipe: cannot copy the build to {self.remote} ({type(e).__name__}: {e}); a rerun after "
                          "a crash will redo the shards that were not copied", file=sys.stderr)
                    self._warned = True

    def __enter__(self) -> WorkMirror:
        self._thread = threading.Thread(target=self._loop, daemon=True, name="lmpipe-mirror")
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if exc[0] is not None and issubclass(exc[0], Exception):  # the build failed: keep what finished
            with contextlib.suppress(Exception):
                self.sync(settled_only=False)

    def discard(self) -> None:
        """Remove the remote work area (after the artifact is published)."""
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm(self.remote, recursive=True)


# ------------------------------------------------------------------------------------------ leases


def _precondition_failed(e: BaseException) -> bool:
    """True when an S3 call failed on its If-Match / If-None-Match condition (HTTP 412)."""
    seen: BaseException | None = e
    while seen is not None:
        response = getattr(seen, "response", None)
        if isinstance(response, dict) and response.get("Error", {}).get("Code") in ("PreconditionFailed", "412"):
            return True
        seen = seen.__cause__ or seen.__context__
    return isinstance(e, FileExistsError)


class _S3:
    """The four S3 calls a lease needs, with their conditions, on an s3fs filesystem."""

    def __init__(self, fs: Any, path: str) -> None:
        self.fs = fs
        self.bucket, self.key, _ = fs.split_path(path)

    def _call(self, fn: Callable[[], Any]) -> Any:
        from fsspec.asyn import sync

        return sync(self.fs.loop, fn)

    def put(self, body: bytes, *, create: bool = False, if_match: str | None = None) -> str:
        cond = {"IfNoneMatch": "*"} if create else {"IfMatch": if_match} if if_match else {}
        out = self.fs.call_s3("put_object", Bucket=self.bucket, Key=self.key, Body=body, **cond)
        return str(out["ETag"])

    def get(self) -> tuple[bytes, str] | None:
        """The object's body and ETag from one GET (so the two belong together), None when it is absent."""
        async def get() -> tuple[bytes, str]:
            resp = await self.fs._call_s3("get_object", Bucket=self.bucket, Key=self.key)
            async with resp["Body"] as body:
                return await body.read(), str(resp["ETag"])

        try:
            return self._call(get)
        except FileNotFoundError:
            return None

    def delete(self, if_match: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.call_s3("delete_object", Bucket=self.bucket, Key=self.key, IfMatch=if_match)


_PROBED: dict[str, bool] = {}


def conditional_writes(fs: Any, root: str) -> bool:
    """Whether the S3 server under ``root`` refuses a second ``If-None-Match: *`` put (probed once per process)."""
    bucket = fs.split_path(root)[0]
    if bucket not in _PROBED:
        s3 = _S3(fs, f"{root.rstrip('/')}/.lmpipe-probe-{uuid.uuid4().hex}")
        s3.put(b"probe", create=True)
        try:
            s3.put(b"again", create=True)
            _PROBED[bucket] = False
        except Exception as e:  # noqa: BLE001
            if not _precondition_failed(e):
                raise
            _PROBED[bucket] = True
        with contextlib.suppress(Exception):
            s3.fs.call_s3("delete_object", Bucket=s3.bucket, Key=s3.key)
    return _PROBED[bucket]


class ObjectLease:
    """A `storage.store.Lease` kept as an S3 object with conditional writes (see the module docstring)."""

    def __init__(self, record: Any) -> None:
        self.record = record
        self.lost = threading.Event()

    def check(self) -> None:
        """Raise when another process took the lease over (our heartbeat lapsed): it must not publish too."""
        if self.lost.is_set():
            raise RuntimeError(f"the build lease of pid {self.record.pid} was taken over by another process "
                               f"(no heartbeat for too long); this build stops without publishing")

    @staticmethod
    @contextlib.contextmanager
    def acquire(fs: Any, path: str, done: Callable[[], bool] | None = None,
                poll: float = 1.0) -> Iterator[ObjectLease | None]:
        """Hold the lease at ``path`` for the ``with`` block; the same contract as `storage.store.Lease.acquire`."""
        from storage.store import HEARTBEAT_SECONDS, LEASE_PREFIX, Lease, _hostname

        s3 = _S3(fs, path)
        waited = False
        while True:
            now = time.time()
            mine = Lease(_hostname(), os.getpid(), now, now)
            try:
                etag = s3.put(json.dumps(mine.__dict__).encode(), create=True)
                break
            except Exception as e:  # noqa: BLE001
                if not _precondition_failed(e):
                    raise
            seen = s3.get()
            if seen is None:
                continue  # released between our put and our get
            held = _parse(seen[0])
            if held is not None and held.pid == os.getpid() and held.host == _hostname():
                raise RuntimeError(f"{path} is already held by this process (a stage built inside itself?)")
            if held is None or not held.alive():  # abandoned (or garbage): take over that very version
                try:
                    etag = s3.put(json.dumps(mine.__dict__).encode(), if_match=seen[1])
                    break
                except Exception as e:  # noqa: BLE001
                    if not _precondition_failed(e):
                        raise
                    continue  # another waiter took it first
            if done is not None and done():
                yield None
                return
            if not waited:
                name = path.rsplit("/", 1)[-1][len(LEASE_PREFIX):-5]
                print(f"lmpipe: {name} is being built by pid {held.pid} on {held.host}; waiting for it",
                      file=sys.stderr)
                waited = True
            time.sleep(poll)
        lease = ObjectLease(mine)
        current = [etag]
        if done is not None and done():  # completed between our check and our lease
            s3.delete(current[0])
            yield None
            return
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(HEARTBEAT_SECONDS):
                body = json.dumps({**mine.__dict__, "heartbeat": time.time()}).encode()
                try:
                    current[0] = s3.put(body, if_match=current[0])
                except Exception as e:  # noqa: BLE001 -- a network error: try again at the next beat
                    if _precondition_failed(e):
                        lease.lost.set()
                        print(f"lmpipe: lost the build lease {path} to another process", file=sys.stderr)
                        return

        thread = threading.Thread(target=beat, daemon=True, name="lmpipe-lease")
        thread.start()
        try:
            yield lease
        finally:
            stop.set()
            thread.join()
            if not lease.lost.is_set():
                with contextlib.suppress(Exception):
                    s3.delete(current[0])


def _parse(body: bytes) -> Any:
    from storage.store import Lease

    try:
        data = json.loads(body)
        return Lease(str(data["host"]), int(data["pid"]), float(data["heartbeat"]), float(data["started"]))
    except (ValueError, KeyError, TypeError):
        return None
