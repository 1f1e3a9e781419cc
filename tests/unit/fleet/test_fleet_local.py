"""The local transport (same API as SSH), fan-out with bounded concurrency, and SSH option precedence."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from llmctl.config.inventory import Host
from llmctl.fleet.local import LocalTransport
from llmctl.fleet.pool import Fleet
from llmctl.fleet.ssh import SSHOptions, _parse_jump
from llmctl.fleet.transport import CommandFailed, CommandResult, CommandTimeout, FleetError, Transport


async def test_run_returns_status_and_output() -> None:
    t = LocalTransport("h1")
    r = await t.run(["sh", "-c", 'echo out; echo err >&2; read x; echo "$x"; exit 3'], input="in\n")
    assert (r.exit_status, r.stdout, r.stderr, r.host) == (3, "out\nin\n", "err\n", "h1")
    assert r.command == "sh -c 'echo out; echo err >&2; read x; echo \"$x\"; exit 3'"


async def test_missing_program_is_exit_127_and_check_raises_naming_host_and_command() -> None:
    t = LocalTransport("h1")
    assert (await t.run(["/nonexistent/prog"])).exit_status == 127
    with pytest.raises(CommandFailed) as info:
        await t.run(["sh", "-c", "echo broken >&2; exit 2"], check=True)
    assert str(info.value) == "h1: sh -c 'echo broken >&2; exit 2': exit status 2: broken"


async def test_timeout_kills_the_command_and_names_it() -> None:
    t = LocalTransport("h1")
    loop = asyncio.get_running_loop()
    start = loop.time()
    with pytest.raises(CommandTimeout) as info:
        await t.run(["sleep", "30"], timeout=0.2)
    assert str(info.value) == "h1: sleep 30: timed out after 0.2 s"
    assert loop.time() - start < 5


async def test_upload_expands_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    src = tmp_path / "src.txt"
    src.write_text("payload")
    await LocalTransport("h1").upload(src, "~/a/b/dst.txt")
    assert (tmp_path / "home" / "a" / "b" / "dst.txt").read_text() == "payload"


def local_hosts(n: int) -> list[Host]:
    return [Host(name=f"l{i}", connection="local") for i in range(n)]


async def test_fan_out_is_bounded_and_a_failing_host_does_not_stop_the_others() -> None:
    active = peak = 0

    async def action(host: Host, t: Transport) -> str:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        for _ in range(5):  # yield so that every host that may start does start
            await asyncio.sleep(0)
        active -= 1
        if host.name == "l3":
            raise FleetError(host.name, "boom")
        return host.name

    async with Fleet(local_hosts(6), concurrency=2) as fleet:
        results = await fleet.each(action)
    assert peak == 2
    assert isinstance(results["l3"], FleetError) and str(results["l3"]) == "l3: boom"
    assert [results[f"l{i}"] for i in (0, 1, 2, 4, 5)] == ["l0", "l1", "l2", "l4", "l5"]


async def test_fleet_run_on_local_hosts() -> None:
    async with Fleet(local_hosts(3)) as fleet:
        results = await fleet.run(["sh", "-c", "echo $0", "hi"])
    assert all(isinstance(r, CommandResult) and r.stdout == "hi\n" for r in results.values())


def test_known_hosts_option_beats_env_beats_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLMCTL_KNOWN_HOSTS", raising=False)
    assert SSHOptions.from_env().known_hosts == Path("~/.ssh/known_hosts")
    monkeypatch.setenv("LLMCTL_KNOWN_HOSTS", "/env/kh")
    assert SSHOptions.from_env().known_hosts == Path("/env/kh")
    opts = SSHOptions.from_env(accept_new_host_keys=True, known_hosts=Path("/opt/kh"))
    assert opts.known_hosts == Path("/opt/kh") and opts.accept_new_host_keys


@pytest.mark.parametrize(
    ("jump", "parsed"),
    [("bastion", (None, "bastion", 22)), ("ops@10.0.0.1:2200", ("ops", "10.0.0.1", 2200))],
)
def test_jump_spec(jump: str, parsed: tuple[str | None, str, int]) -> None:
    assert _parse_jump(jump) == parsed
