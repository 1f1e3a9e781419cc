"""The output file: append-only result lines, the job's checkpoint. Opening it takes an exclusive lock (two
runs writing one file would duplicate results), reads back what is done and cuts off a torn last line;
every batch of lines is written, flushed and fsynced before its requests count as done."""

from __future__ import annotations

import fcntl
import os
import stat
from pathlib import Path

from llmctl.batch.results import Checkpoint, read_checkpoint
from llmctl.errors import LlmctlError


class OutputFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def open(self) -> Checkpoint:
        """Lock the file (creating it), and return what it holds. Raises LlmctlError for a file another run
        holds or one with unreadable complete lines."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        except OSError as exc:
            raise LlmctlError(f"cannot open the output {self.path}: {exc.strerror or exc}") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            # /dev/full, a FIFO, /dev/zero: a checkpoint read from it would never end, a write never land.
            os.close(fd)
            raise LlmctlError(f"the output {self.path} is not a regular file")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LlmctlError(
                f"another batch run is writing {self.path}; wait for it, or cancel it (llmctl batch status)"
            ) from None
        self._fd = fd
        try:
            with open(self.path, "rb") as f:
                cp = read_checkpoint(f)
            if cp.corrupt:
                line, reason = cp.corrupt[0]
                raise LlmctlError(
                    f"{self.path}:{line}: {reason}; this is not a result line written by llmctl batch "
                    f"({len(cp.corrupt)} such line(s)): fix or move the file before resuming"
                )
            if cp.torn_bytes:
                # A write cut short by a crash: its request has no result yet and is sent again.
                os.ftruncate(fd, cp.keep_bytes)
                os.fsync(fd)
            _fsync_dir(self.path.parent)
        except BaseException:
            self.close()
            raise
        return cp

    def append(self, data: bytes) -> None:
        """Write whole lines and make them durable before returning."""
        if self._fd is None:
            raise RuntimeError("output file not open")
        self._still_ours()
        view = memoryview(data)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            os.fsync(self._fd)
        except OSError as exc:
            raise LlmctlError(
                f"cannot write the output {self.path}: {exc.strerror or exc}; the lines written so far are "
                "kept: re-run the same command to resume"
            ) from None

    def _still_ours(self) -> None:
        """The path still names the file this run writes: a deleted or replaced output would take every
        later result with it while the run reports success."""
        assert self._fd is not None
        mine = os.fstat(self._fd)
        try:
            now = os.stat(self.path)
        except FileNotFoundError:
            now = None
        if mine.st_nlink == 0 or now is None:
            raise LlmctlError(
                f"the output {self.path} was deleted during the run; stopping (a re-run starts over)"
            )
        if (now.st_dev, now.st_ino) != (mine.st_dev, mine.st_ino):
            raise LlmctlError(f"the output {self.path} was replaced by another file during the run; stopping")

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # also releases the lock
            self._fd = None


def _fsync_dir(directory: Path) -> None:
    # A new file's directory entry is durable only once the directory itself is synced.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def count_lines(path: Path) -> int:
    """Complete lines in a file (results written so far), 0 when it does not exist."""
    try:
        with open(path, "rb") as f:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    except FileNotFoundError:
        return 0
