"""SSH transport (asyncssh): one kept-open connection per host, host keys checked against known_hosts.

Trust is explicit: a host missing from known_hosts is refused unless `accept_new_host_keys` is set, which
records its key; a host whose key differs from the recorded one is always refused.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

import asyncssh
from asyncssh.known_hosts import match_known_hosts

from llmctl.config.inventory import Host
from llmctl.engines.shell import render_command
from llmctl.fleet import KNOWN_HOSTS_ENV
from llmctl.fleet.transport import (
    CommandResult,
    CommandTimeout,
    FleetError,
    HostKeyMismatch,
    HostUnreachable,
    checked,
)

CONNECT_TIMEOUT_S = 10.0
# Retry connecting (never commands: they may not be idempotent) after 0.5 s, then 1 s.
CONNECT_RETRIES = (0.5, 1.0)


@dataclass(frozen=True)
class SSHOptions:
    known_hosts: Path = Path("~/.ssh/known_hosts")
    accept_new_host_keys: bool = False
    # None uses the user's agent (SSH_AUTH_SOCK) as ssh(1) would; tests pass "" to keep it out.
    agent_path: str | None = None
    use_ssh_config: bool = True

    @classmethod
    def from_env(cls, accept_new_host_keys: bool = False, known_hosts: Path | None = None) -> SSHOptions:
        """An explicit known_hosts path wins over $LLMCTL_KNOWN_HOSTS, which wins over ~/.ssh/known_hosts."""
        path = known_hosts or os.environ.get(KNOWN_HOSTS_ENV)
        return cls(
            known_hosts=Path(path) if path else cls.known_hosts, accept_new_host_keys=accept_new_host_keys
        )

    @property
    def known_hosts_path(self) -> Path:
        return self.known_hosts.expanduser()


# Parsed once per file version and key file: connecting to 50 hosts would otherwise parse known_hosts 100
# times and each private key 50 times, a third of the client's CPU time in a fan-out.
_known_cache: dict[Path, tuple[tuple[int, int], asyncssh.SSHKnownHosts]] = {}
_key_cache: dict[str, list[asyncssh.SSHKeyPair]] = {}


def load_known_hosts(path: Path) -> asyncssh.SSHKnownHosts | None:
    """The parsed known_hosts file, None when there is none; re-read when it changed (a key was recorded)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    stamp = (st.st_mtime_ns, st.st_size)
    hit = _known_cache.get(path)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    known = asyncssh.read_known_hosts(str(path))
    _known_cache[path] = (stamp, known)
    return known


def load_client_keys(path: str) -> list[asyncssh.SSHKeyPair]:
    if path not in _key_cache:
        _key_cache[path] = list(asyncssh.load_keypairs([os.path.expanduser(path)]))
    return _key_cache[path]


def _known_name(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


def _parse_jump(jump: str) -> tuple[str | None, str, int]:
    user, _, rest = jump.rpartition("@")
    host, _, port = rest.partition(":")
    return (user or None), host, int(port) if port else 22


class SSHTransport:
    def __init__(self, host: Host, options: SSHOptions) -> None:
        self.host = host.name
        self._h = host
        self._options = options
        self._conn: asyncssh.SSHClientConnection | None = None
        self._jump: asyncssh.SSHClientConnection | None = None
        self._lock = asyncio.Lock()

    def _where(self) -> str:
        return f"{self._h.address}:{self._h.port}"

    def _known_hosts(self, address: str, port: int) -> asyncssh.SSHKnownHosts | None:
        """The parsed known_hosts when it has an entry for this host, else None."""
        path = self._options.known_hosts_path
        try:
            known = load_known_hosts(path)
        except (OSError, ValueError) as exc:
            raise HostUnreachable(self.host, f"cannot read known_hosts {path}: {exc}") from None
        if known is None:
            return None
        keys, cas, *_ = match_known_hosts(known, address, address, port)
        return known if keys or cas else None

    def _record_key(self, address: str, port: int, key: asyncssh.SSHKey) -> None:
        path = self._options.known_hosts_path
        path.parent.mkdir(parents=True, exist_ok=True)
        line = f"{_known_name(address, port)} {key.export_public_key('openssh').decode().strip()}\n"
        with path.open("a", encoding="utf-8") as f:
            f.write(line)

    async def _connect_to(
        self, address: str, port: int, user: str | None, tunnel: asyncssh.SSHClientConnection | None
    ) -> asyncssh.SSHClientConnection:
        known = self._known_hosts(address, port)
        if known is None and not self._options.accept_new_host_keys:
            raise HostKeyMismatch(
                self.host,
                f"host key for {address}:{port} is not in {self._options.known_hosts_path}; run with "
                "--accept-new-host-keys to trust it on first use (it is recorded there)",
            )
        kwargs: dict[str, object] = {
            "port": port,
            "username": user,
            "connect_timeout": CONNECT_TIMEOUT_S,
            "known_hosts": known,
            # As ssh(1) does by default: compressing costs CPU per packet and commands' output is small.
            "compression_algs": None,
        }
        if tunnel is not None:
            kwargs["tunnel"] = tunnel
        if self._h.key:
            try:
                kwargs["client_keys"] = load_client_keys(self._h.key)
            except (OSError, asyncssh.KeyImportError) as exc:
                raise HostUnreachable(self.host, f"cannot load SSH key {self._h.key}: {exc}") from None
        if self._options.agent_path is not None:
            kwargs["agent_path"] = self._options.agent_path or None
        if not self._options.use_ssh_config:
            kwargs["config"] = []
        try:
            conn = await asyncssh.connect(address, **kwargs)
        except asyncssh.HostKeyNotVerifiable:
            raise HostKeyMismatch(
                self.host,
                f"host key for {address}:{port} does not match {self._options.known_hosts_path}; if the host "
                f"was reinstalled, remove the old key with: ssh-keygen -R {shlex.quote(_known_name(address, port))}"
                f" -f {shlex.quote(str(self._options.known_hosts_path))}",
            ) from None
        if known is None:
            server_key = conn.get_server_host_key()
            if server_key is not None:
                self._record_key(address, port, server_key)
        return conn

    async def _connection(self) -> asyncssh.SSHClientConnection:
        async with self._lock:
            if self._conn is not None:
                return self._conn
            last: Exception | None = None
            for delay in (*CONNECT_RETRIES, None):
                try:
                    if self._h.jump and self._jump is None:
                        juser, jhost, jport = _parse_jump(self._h.jump)
                        self._jump = await self._connect_to(jhost, jport, juser or self._h.user, None)
                    self._conn = await self._connect_to(
                        self._h.address, self._h.port, self._h.user, self._jump
                    )
                    return self._conn
                except HostKeyMismatch:
                    raise
                except asyncssh.PermissionDenied as exc:
                    raise HostUnreachable(
                        self.host, f"authentication failed at {self._where()}: {exc}"
                    ) from None
                except (OSError, asyncssh.Error, TimeoutError) as exc:
                    last = exc
                    if delay is not None:
                        await asyncio.sleep(delay)
            detail = str(last) or type(last).__name__
            raise HostUnreachable(self.host, f"cannot connect to {self._where()}: {detail}")

    async def run(
        self,
        argv: list[str] | tuple[str, ...],
        *,
        timeout: float = 60.0,
        check: bool = False,
        input: str | None = None,
    ) -> CommandResult:
        argv = tuple(argv)
        conn = await self._connection()
        start = time.perf_counter()
        try:
            proc = await conn.run(render_command(argv), input=input, timeout=timeout, check=False)
        except asyncssh.TimeoutError:
            raise CommandTimeout(self.host, f"timed out after {timeout:g} s", argv) from None
        except (OSError, asyncssh.Error) as exc:
            await self._drop()
            raise HostUnreachable(self.host, f"connection lost: {exc}", argv) from None
        status = proc.exit_status if proc.exit_status is not None else 255
        out = proc.stdout if isinstance(proc.stdout, str) else (proc.stdout or b"").decode(errors="replace")
        err = proc.stderr if isinstance(proc.stderr, str) else (proc.stderr or b"").decode(errors="replace")
        return checked(CommandResult(self.host, argv, status, out, err, time.perf_counter() - start), check)

    async def upload(self, local: Path, remote: str) -> None:
        conn = await self._connection()
        # SFTP paths are relative to the login directory, which is where "~/" points.
        target = remote[2:] if remote.startswith("~/") else remote
        try:
            async with conn.start_sftp_client() as sftp:
                parent = os.path.dirname(target)
                if parent:
                    await sftp.makedirs(parent, exist_ok=True)
                await sftp.put(str(local), target)
        except (OSError, asyncssh.Error) as exc:
            raise FleetError(self.host, f"upload of {local} to {remote} failed: {exc}") from None

    async def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def close(self) -> None:
        for conn in (self._conn, self._jump):
            if conn is not None:
                conn.close()
                await conn.wait_closed()
        self._conn = self._jump = None
