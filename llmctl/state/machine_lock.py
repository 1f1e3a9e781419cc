"""A lock held by a process for as long as it lives, that no file operation can remove: a Linux
abstract-namespace socket named after the state store. The single-controller guarantee rests on it, so
deleting or replacing the store file under a running controller cannot let a second one start beside it
(the lock row inside the database went with the deleted file)."""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from llmctl.errors import LlmctlError


def _address(name: str, store_path: Path) -> str:
    digest = hashlib.sha256(str(store_path.expanduser().resolve()).encode()).hexdigest()[:24]
    return f"\0llmctl-{name}-{digest}"


@contextmanager
def machine_lock(name: str, store_path: Path) -> Iterator[None]:
    """Hold the named lock for the store at `store_path` on this machine, or raise LlmctlError."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.bind(_address(name, store_path))
    except OSError:
        s.close()
        raise LlmctlError(
            f"another llmctl {name} is running on this machine for the state store {store_path}"
        ) from None
    try:
        yield
    finally:
        s.close()


class StoreWatch:
    """Whether the store file is still the one that was opened: same device and inode."""

    def __init__(self, path: Path) -> None:
        self.path = path
        st = path.stat()
        self.identity = (st.st_dev, st.st_ino)

    def problem(self) -> str:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return f"the state store {self.path} was deleted"
        if (st.st_dev, st.st_ino) != self.identity:
            return f"the state store {self.path} was replaced by another file"
        return ""
