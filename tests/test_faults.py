"""Faults while writing (issue 7, item 5): nothing lost, nothing half-written.

* **SIGKILL**: a writer process is killed at random moments while it writes a large file
  (``mrcio.write``, MRCZ and plain; the streaming writer ``mrcio.open(p, "w")``; appending
  with ``mrcio.open(p, "a")``). The target is always absent, its previous version byte for
  byte, or the complete new version. (A killed process cannot remove its temporary file;
  those are counted, not forbidden.) ``MRCIO_FAULT_KILLS`` sets the kills per writer.
* **Disk full**: writes to the temporary file fail with ``ENOSPC`` after N bytes (a short
  write first, as the kernel does), for many N; also a failing ``fsync`` and rename, and a
  ``KeyboardInterrupt`` in the middle. The target is untouched and no ``.*.partial`` file
  is left behind.
* **Concurrent readers**: threads read a file in a loop (``read``, ``read(mmap=True)``,
  ``open()[k]``, ``readMRC``) while another process replaces it with other versions; every
  read equals one of the versions, and none raises.
"""

from __future__ import annotations

import errno
import io
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import mrcio
import mrcio._fileio

# ---------------------------------------------------------------------------------------
# SIGKILL at random moments
# ---------------------------------------------------------------------------------------

KILLS = int(os.environ.get("MRCIO_FAULT_KILLS", "25"))

#: A fork server: imports mrcio and builds the data once, then forks one writer per
#: command, so that each kill costs a fork instead of an interpreter start.
SERVER = r'''
import json, os, sys, time
import numpy as np
import mrcio

rng = np.random.default_rng(7)
movie = rng.poisson(2.0, (96, 512, 512)).astype(np.int16)      # 48 MiB
volume = rng.normal(0, 1, (64, 512, 512)).astype(np.float32)    # 64 MiB

def job(mode, target):
    if mode == "write":
        mrcio.write(target, volume, overwrite=True)
    elif mode == "write_mrcz":
        mrcio.write(target, movie, stack=True, compressor="zstd", clevel=3,
                    meta={"kV": 300, "note": "new"}, overwrite=True)
    elif mode == "stream":
        with mrcio.open(target, "w", dtype=np.int16, frame_shape=(512, 512),
                        compressor="lz4", meta={"kV": 300}, overwrite=True) as out:
            for frame in movie:
                out.append(frame)
    elif mode == "append":
        with mrcio.open(target, "a") as out:
            for frame in movie[:24]:
                out.append(frame)
    elif mode != "none":
        raise ValueError(mode)

for line in sys.stdin:
    command, *args = line.split()
    if command == "run":  # fork a writer; report its pid at once
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                job(args[0], args[1])
            except BaseException:
                code = 1
            os._exit(code)
        print(json.dumps({"pid": pid, "t": time.monotonic()}), flush=True)
    elif command == "wait":
        _, status = os.waitpid(int(args[0]), 0)
        print(json.dumps({"status": status, "t": time.monotonic()}), flush=True)
'''


class WriterServer:
    def __init__(self) -> None:
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
        self.proc = subprocess.Popen([sys.executable, "-c", SERVER], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=env)

    def _ask(self, line: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        if not answer:
            raise RuntimeError("writer server died")
        return json.loads(answer)

    def start(self, mode: str, target: Path) -> int:
        return int(self._ask(f"run {mode} {target}")["pid"])

    def wait(self, pid: int) -> int:
        return int(self._ask(f"wait {pid}")["status"])

    def run(self, mode: str, target: Path) -> float:
        """Run a writer to the end; return how long it took."""
        started = time.monotonic()
        status = self.wait(self.start(mode, target))
        assert status == 0, f"{mode} writer failed (status {status})"
        return time.monotonic() - started

    def ping(self) -> None:
        """Wait until the server has imported mrcio and made its data."""
        self.wait(self.start("none", Path(os.devnull)))

    def close(self) -> None:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=60)
        self.proc.stdout.close()


@pytest.fixture(scope="module")
def server() -> Iterator[WriterServer]:
    srv = WriterServer()
    srv.ping()
    yield srv
    srv.close()


def _partials(directory: Path) -> list[Path]:
    return sorted(directory.glob(".*.partial"))


@pytest.mark.parametrize("mode", ["write", "write_mrcz", "stream", "append"])
def test_sigkill_while_writing(server: WriterServer, mode: str, tmp_path: Path,
                               record_property: Any) -> None:
    rng = random.Random(f"kill-{mode}")
    old = tmp_path / "old.mrcz"
    mrcio.write(old, (np.arange(2 * 512 * 512) % 1000).astype(np.int16).reshape(2, 512, 512),
                stack=True, compressor="zstd", meta={"note": "old"}, fsync=False)
    old_bytes = old.read_bytes()
    if mode == "append":
        (tmp_path / "ref").mkdir()
        reference = tmp_path / "ref" / "target"
        reference.write_bytes(old_bytes)
    else:
        reference = tmp_path / "reference.mrc"
    durations = []
    for _ in range(2):
        if mode == "append":
            reference.write_bytes(old_bytes)
        durations.append(server.run(mode, reference))
    duration = max(durations)
    new_bytes = reference.read_bytes()
    assert new_bytes != old_bytes
    work = tmp_path / "work"
    work.mkdir()
    target = work / "target"
    outcomes = {"absent": 0, "old": 0, "new": 0}
    partials_left = 0
    for k in range(KILLS):
        had_old = mode == "append" or k % 2 == 0
        if had_old:
            target.write_bytes(old_bytes)
        pid = server.start(mode, target)
        time.sleep(rng.uniform(0.0, 1.2 * duration))
        os.kill(pid, signal.SIGKILL)  # not reaped yet, so the pid is still ours
        server.wait(pid)
        if not target.exists():
            assert not had_old, f"kill {k}: the previous version is gone"
            outcomes["absent"] += 1
        else:
            now = target.read_bytes()
            if now == new_bytes:
                outcomes["new"] += 1
            else:
                assert had_old, f"kill {k}: a file appeared that is not the new version " \
                    f"({len(now):,} bytes; new is {len(new_bytes):,})"
                assert now == old_bytes, (
                    f"kill {k}: target is neither the old nor the new version "
                    f"({len(now):,} bytes)"
                )
                outcomes["old"] += 1
        left = _partials(work)
        partials_left += len(left)
        for path in left:
            path.unlink()
        if target.exists():
            target.unlink()
    record_property("kills", KILLS)
    record_property("outcomes", json.dumps(outcomes))
    record_property("temporary_files_left_by_kills", partials_left)
    print(f"\nSIGKILL {mode}: {KILLS} kills over {duration:.2f} s writes, "
          f"{json.dumps(outcomes)}, "
          f"{partials_left} temporary files left by killed writers")
    assert outcomes["old"] + outcomes["absent"] > 0, "no kill landed during a write"


# ---------------------------------------------------------------------------------------
# Disk full, failing fsync and rename, interrupts
# ---------------------------------------------------------------------------------------


class Budget:
    """Bytes the 'disk' still takes; then a short write, then ENOSPC (or an interrupt)."""

    def __init__(self, limit: int | None, error: Callable[[], BaseException]) -> None:
        self.limit = limit
        self.used = 0
        self.error = error
        self.tripped = False

    def take(self, n: int) -> int:
        if self.limit is None:
            self.used += n
            return n
        room = self.limit - self.used
        if room <= 0:
            self.tripped = True
            raise self.error()
        n = min(n, room)
        self.used += n
        return n


def _enospc() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.fixture
def disk(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Budget]:
    """Install a byte budget on every file mrcio opens for writing (its temporary files),
    through the handle's write and through os.write/pwrite/writev/pwritev on its fd."""
    state: dict[str, Any] = {"budget": Budget(None, _enospc), "fds": set()}

    class FullDiskFile(io.FileIO):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            state["fds"].add(self.fileno())

        def write(self, data: Any) -> int:
            view = memoryview(data).cast("B")
            n = state["budget"].take(len(view))
            return super().write(view[:n])

        def close(self) -> None:
            if not self.closed:
                state["fds"].discard(self.fileno())
            super().close()

    real_open = open

    def fake_open(file: Any, mode: str = "r", buffering: int = -1, *args: Any,
                  **kwargs: Any) -> Any:
        if any(c in mode for c in "wxa+") and buffering == 0 and "b" in mode:
            return FullDiskFile(file, mode.replace("b", ""))
        if any(c in mode for c in "wxa+"):
            raise AssertionError(f"mrcio opened {file} for writing in a way the test "
                                 f"cannot watch: mode {mode!r}, buffering {buffering}")
        return real_open(file, mode, buffering, *args, **kwargs)

    def wrap(name: str) -> None:
        real = getattr(os, name)

        def guarded(fd: int, data: Any, *rest: Any) -> int:
            if fd not in state["fds"]:
                return real(fd, data, *rest)
            if name in ("writev", "pwritev"):
                total = sum(len(memoryview(b).cast("B")) for b in data)
                n = state["budget"].take(total)
                if n < total:
                    flat = b"".join(bytes(b) for b in data)[:n]
                    return real(fd, [flat], *rest) if n else 0
                return real(fd, data, *rest)
            view = memoryview(data).cast("B")
            n = state["budget"].take(len(view))
            return real(fd, view[:n], *rest) if n else 0

        monkeypatch.setattr(os, name, guarded)

    monkeypatch.setattr(mrcio._fileio, "open", fake_open, raising=False)
    for name in ("write", "pwrite", "writev", "pwritev"):
        if hasattr(os, name):
            wrap(name)

    def install(limit: int | None, error: Callable[[], BaseException] = _enospc) -> Budget:
        state["budget"] = Budget(limit, error)
        return state["budget"]

    return install


def _movie() -> np.ndarray:
    return np.random.default_rng(3).poisson(2.0, (12, 64, 96)).astype(np.int16)


def _write_plain(target: Path) -> None:
    mrcio.write(target, _movie().astype(np.float32), overwrite=True, meta={"a": 1},
                fsync=False)


def _write_mrcz(target: Path) -> None:
    mrcio.write(target, _movie(), stack=True, compressor="zstd", overwrite=True,
                meta={"kV": 300}, blocksize=1024, fsync=False)


def _stream(nframes: bool) -> Callable[[Path], None]:
    def run(target: Path) -> None:
        extra = {"nframes": 12} if nframes else {}
        with mrcio.open(target, "w", dtype=np.int16, frame_shape=(64, 96), compressor="lz4",
                        overwrite=True, fsync=False, **extra) as out:
            for frame in _movie():
                out.append(frame)
    return run


def _append(target: Path) -> None:
    with mrcio.open(target, "a", fsync=False) as out:
        for frame in _movie()[:6]:
            out.append(frame)


def _classic_append(target: Path) -> None:
    mrcio.writeMRC(_movie()[:5], str(target), compressor="zstd", idx=2, fsync=False)


def _classic_new(target: Path) -> None:
    mrcio.writeMRC(list(_movie()), str(target), compressor="lz4", meta={"a": 1}, fsync=False)


WRITERS: dict[str, Callable[[Path], None]] = {
    "write_plain": _write_plain,
    "write_mrcz": _write_mrcz,
    "stream_nframes": _stream(True),
    "stream_unknown_length": _stream(False),
    "append": _append,
    "writeMRC_idx": _classic_append,
    "writeMRC": _classic_new,
}


def _old_version(path: Path) -> bytes:
    mrcio.write(path, np.arange(12 * 64 * 96, dtype=np.int16).reshape(12, 64, 96),
                stack=True, compressor="zstd", meta={"note": "old"}, overwrite=True,
                fsync=False)
    return path.read_bytes()


def _limits(total: int, rng: random.Random) -> list[int]:
    fixed = [0, 1, 16, 512, 1023, 1024, 1025, 1100, 4096, total // 2, total - 1024,
             total - 17, total - 1]
    spread = [rng.randrange(total) for _ in range(20)]
    return sorted({n for n in fixed + spread if 0 <= n < total})


@pytest.mark.parametrize("writer", list(WRITERS))
def test_disk_full(writer: str, tmp_path: Path, disk: Callable[..., Budget]) -> None:
    """ENOSPC after N bytes, for many N: the target keeps its old bytes (or stays absent)
    and no temporary file is left; with room enough the write completes."""
    fn = WRITERS[writer]
    target = tmp_path / "target"
    needs_old = writer in ("append", "writeMRC_idx")
    old_bytes = _old_version(target)
    free = disk(None)
    fn(target)
    total = free.used
    new_bytes = target.read_bytes()
    assert total >= len(new_bytes) - 0, (
        f"{writer}: only {total:,} of the {len(new_bytes):,} bytes written went through "
        "the watched write calls; the test cannot inject a full disk"
    )
    limits = _limits(total, random.Random(writer))
    assert len(limits) >= 25
    for limit in limits:
        for had_old in ((True,) if needs_old else (True, False)):
            if had_old:
                target.write_bytes(old_bytes)
            elif target.exists():
                target.unlink()
            budget = disk(limit)
            failure: OSError | None = None
            try:
                fn(target)
            except OSError as exc:
                failure = exc
            if failure is not None:
                assert failure.errno == errno.ENOSPC, f"{writer} at {limit}: {failure!r}"
                assert failure.filename == str(target), f"{writer} at {limit}: {failure!r}"
            else:
                state = "absent" if not target.exists() else (
                    f"{target.stat().st_size:,} bytes, new version "
                    f"{'intact' if target.read_bytes() == new_bytes else 'CORRUPT'} "
                    f"({len(new_bytes):,} bytes)")
                pytest.fail(f"{writer}: the disk filled after {limit:,} of {total:,} bytes "
                            f"but the write reported success; target: {state}")
            assert budget.tripped
            if had_old:
                assert target.read_bytes() == old_bytes, f"{writer}: target changed at {limit}"
            else:
                assert not target.exists(), f"{writer}: a target appeared at {limit}"
            left = [p.name for p in tmp_path.iterdir() if p.name != "target"]
            assert not left, f"{writer}, disk full after {limit:,} bytes: left {left}"
    disk(None)
    if needs_old:
        target.write_bytes(old_bytes)
    fn(target)
    assert target.read_bytes() == new_bytes


@pytest.mark.parametrize("writer", list(WRITERS))
def test_interrupt_mid_write(writer: str, tmp_path: Path, disk: Callable[..., Budget]) -> None:
    """A KeyboardInterrupt in the middle of writing cleans up like an error does."""
    target = tmp_path / "target"
    old_bytes = _old_version(target)
    free = disk(None)
    WRITERS[writer](target)
    new_size = target.stat().st_size
    target.write_bytes(old_bytes)
    for fraction in (0.1, 0.5, 0.9, 0.99):
        limit = int(free.used * fraction)
        disk(limit, KeyboardInterrupt)
        interrupted = False
        try:
            WRITERS[writer](target)
        except KeyboardInterrupt:
            interrupted = True
        assert interrupted, (
            f"{writer}: interrupted after {limit:,} of {free.used:,} bytes, but the write "
            f"reported success; the target has {target.stat().st_size:,} bytes (the new "
            f"version has {new_size:,})"
        )
        assert target.read_bytes() == old_bytes
        assert [p.name for p in tmp_path.iterdir()] == ["target"]


@pytest.mark.parametrize("writer", list(WRITERS))
@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_commit_failure(writer: str, failing: str, tmp_path: Path,
                        monkeypatch: pytest.MonkeyPatch) -> None:
    """fsync (EIO, as NFS reports a lost write) or the rename failing leaves the target
    and no temporary file."""
    target = tmp_path / "target"
    old_bytes = _old_version(target)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.EIO, f"injected: {failing} failed")

    original = mrcio._fileio.AtomicFile.__init__

    def with_fsync(self: Any, target: Any, *, overwrite: bool, fsync: bool = True,
                   replaces: Any = None) -> None:
        original(self, target, overwrite=overwrite, fsync=True, replaces=replaces)

    monkeypatch.setattr(mrcio._fileio.AtomicFile, "__init__", with_fsync)  # fsync on
    monkeypatch.setattr(os, failing, broken)
    with pytest.raises(OSError, match="injected") as info:
        WRITERS[writer](target)
    assert info.value.errno == errno.EIO
    assert target.read_bytes() == old_bytes
    assert [p.name for p in tmp_path.iterdir()] == ["target"]


def test_exclusive_create_without_hard_links(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """overwrite=False on a filesystem without hard links still creates the file, and
    leaves no temporary file."""
    def no_links(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.EPERM, "injected: no hard links here")

    monkeypatch.setattr(os, "link", no_links)
    target = tmp_path / "new"  # written compressed, then refused uncompressed
    mrcio.write(target, _movie(), stack=True, compressor="zstd", fsync=False)
    assert np.array_equal(mrcio.read(target), _movie())
    assert [p.name for p in tmp_path.iterdir()] == ["new"]
    with pytest.raises(FileExistsError):
        mrcio.write(target, _movie(), stack=True, fsync=False)
    assert [p.name for p in tmp_path.iterdir()] == ["new"]


# ---------------------------------------------------------------------------------------
# Readers while a writer replaces the file
# ---------------------------------------------------------------------------------------

REPLACER = r'''
import sys, time
import numpy as np
import mrcio
sys.path.insert(0, sys.argv[3])
from test_faults import versions
target, seconds = sys.argv[1], float(sys.argv[2])
end = time.monotonic() + seconds
count = 0
items = versions()
while time.monotonic() < end:
    for data, kwargs in items:
        mrcio.write(target, data, overwrite=True, fsync=False, **kwargs)
        count += 1
print(count)
'''


def versions() -> list[tuple[np.ndarray, dict[str, Any]]]:
    """The versions the replacer writes in turn (different sizes, modes and formats)."""
    rng = np.random.default_rng(11)
    plain = rng.normal(0, 1, (8, 128, 128)).astype(np.float32)
    return [
        (plain, {}),
        (plain + 1, {"compressor": "zstd"}),
        (rng.integers(-100, 100, (3, 64, 80)).astype(np.int16), {"stack": True}),
        (rng.integers(0, 50, (5, 96, 96)).astype(np.int16),
         {"stack": True, "compressor": "lz4", "blosc2": True, "meta": {"v": 4}}),
        (rng.normal(0, 1, (2, 4, 32, 32)).astype(np.float32), {}),
    ]


def _matches(got: np.ndarray, wanted: list[np.ndarray]) -> bool:
    return any(got.shape == w.shape and np.array_equal(got, w) for w in wanted)


def test_readers_never_see_a_torn_file(tmp_path: Path, record_property: Any) -> None:
    target = tmp_path / "shared.mrc"
    items = versions()
    whole = [data for data, _ in items]
    firsts = [data[0] for data in whole]
    mrcio.write(target, items[0][0], fsync=False)
    seconds = 4.0
    replacer = subprocess.Popen(
        [sys.executable, "-c", REPLACER, str(target), str(seconds),
         str(Path(__file__).resolve().parent)],
        stdout=subprocess.PIPE, text=True,
    )
    problems: list[str] = []
    reads = {"read": 0, "mmap": 0, "open": 0, "readMRC": 0, "header": 0}
    bad = dict.fromkeys(reads, 0)

    def reader(kind: str) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end and replacer.poll() is None:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("error")
                    if kind == "read":
                        ok = _matches(mrcio.read(target), whole)
                    elif kind == "mmap":
                        try:
                            got = np.array(mrcio.read(target, mmap=True))
                        except ValueError as exc:  # compressed version: no memory map
                            if isinstance(exc, mrcio.MRCError) or "memory mapping" not in str(
                                    exc):
                                raise
                            continue
                        ok = _matches(got, whole)
                    elif kind == "open":
                        with mrcio.open(target) as f:
                            ok = _matches(f[0], firsts)
                    elif kind == "readMRC":
                        image = mrcio.readMRC(str(target))[0]
                        got = np.stack(image) if isinstance(image, list) else image
                        ok = any(np.array_equal(got.reshape(-1), w.reshape(-1)) for w in whole)
                    else:
                        hdr = mrcio.read_header(target)
                        ok = hdr.shape in [w.shape for w in whole]
                reads[kind] += 1
                if not ok:
                    bad[kind] += 1
                    problems.append(f"{kind}: data matching no version")
            except Exception as exc:  # noqa: BLE001 - every failure is a finding
                reads[kind] += 1
                bad[kind] += 1
                problems.append(f"{kind}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=reader, args=(kind,)) for kind in reads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    out, _ = replacer.communicate(timeout=60)
    replaced = int(out.strip() or 0)
    record_property("replacements", replaced)
    record_property("reads", json.dumps(reads))
    record_property("torn_reads", json.dumps(bad))
    print(f"\nconcurrent: {replaced} replacements, reads {json.dumps(reads)}, "
          f"torn or failed {json.dumps(bad)}")
    assert replacer.returncode == 0
    assert replaced >= 20, f"only {replaced} replacements: the race was not exercised"
    assert all(n >= 10 for n in reads.values()), reads
    kinds = sorted(set(problems))
    assert not problems, f"{len(problems)} bad reads {json.dumps(bad)}:\n" + "\n".join(kinds[:20])
    assert not _partials(tmp_path)
