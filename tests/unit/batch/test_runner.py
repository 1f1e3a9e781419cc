"""The runner against scripted replicas (httpx.MockTransport): 4xx written as error lines and not retried,
5xx/429/broken connections retried (on another replica), refused connections set a replica aside, a run
with no replica pauses and resumes, a stop writes out what it has, and a resume sends only what is missing."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import Counter as Tally
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from llmctl.batch.inputs import BatchRequest
from llmctl.batch.outfile import OutputFile
from llmctl.batch.retry import Backoff, ReplicaCooloff
from llmctl.batch.runner import BatchRunner, Outcome, RunOptions
from llmctl.batch.summary import Counters

URLS = ["http://r1.test", "http://r2.test"]


@dataclass
class Fake:
    """Replicas by host name; `script[custom_id]` lists what successive attempts get (a status, "reset" for a
    connection dropped mid-request), then 200."""

    script: dict[str, list[int | str]] = field(default_factory=dict)
    down: set[str] = field(default_factory=set)
    calls: list[tuple[str, str]] = field(default_factory=list)
    models: set[str] = field(default_factory=set)
    health_checks: int = 0
    delay_s: float = 0.0
    on_health: Callable[[Fake], None] | None = None

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        if request.url.path == "/health":
            self.health_checks += 1
            if self.on_health:
                self.on_health(self)
            if host in self.down:
                raise httpx.ConnectError("connection refused")
            return httpx.Response(200)
        if host in self.down:
            raise httpx.ConnectError("connection refused")
        body = json.loads(request.content)
        cid = body["prompt"]
        self.models.add(body["model"])
        self.calls.append((host, cid))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        steps = self.script.get(cid)
        step = steps.pop(0) if steps else 200
        if step == "reset":
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
        assert isinstance(step, int)
        if step >= 400:
            err = {"error": {"message": f"status {step}", "type": "BadRequestError", "code": step}}
            return httpx.Response(step, json=err)
        usage = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
        return httpx.Response(200, json={"id": f"cmpl-{cid}", "usage": usage}, headers={"x-request-id": cid})


def reqs(n: int) -> list[BatchRequest]:
    return [
        BatchRequest(f"c{i}", "/v1/completions", {"model": "orig", "prompt": f"c{i}"}, i + 1)
        for i in range(n)
    ]


def options(**kw: object) -> RunOptions:
    base: dict[str, object] = {
        "concurrency": 4,
        "model": "dep",
        "flush_interval_s": 0.01,
        "backoff": Backoff(base_s=0.001, cap_s=0.01),
        "cooloff": ReplicaCooloff(first_s=0.01, cap_s=0.05),
        "max_attempts": 4,
    }
    base.update(kw)
    return RunOptions(**base)  # type: ignore[arg-type]


async def run(
    tmp: Path, fake: Fake, requests: list[BatchRequest], urls: list[str] | None = None, **kw: object
) -> tuple[Outcome, Counters, list[dict[str, object]]]:
    out = OutputFile(tmp / "out.jsonl")
    cp = out.open()
    counters = Counters(total=len(requests), already_done=len(cp.done))
    runner = BatchRunner(urls or URLS, options(**kw), out, counters, transport=httpx.MockTransport(fake))
    todo = [r for r in requests if r.custom_id not in cp.done]
    try:
        outcome = await runner.run(todo)
    finally:
        out.close()
    lines = [json.loads(x) for x in (tmp / "out.jsonl").read_text().splitlines()]
    return outcome, counters, lines


def ids(lines: list[dict[str, object]]) -> Tally[object]:
    return Tally(line["custom_id"] for line in lines)


async def test_all_succeed_once_with_the_deployment_model(tmp_path: Path) -> None:
    fake = Fake()
    outcome, c, lines = await run(tmp_path, fake, reqs(50))
    assert ids(lines) == Tally(f"c{i}" for i in range(50))
    assert all(line["error"] is None for line in lines)
    assert lines[0]["response"] == {
        "status_code": 200,
        "request_id": lines[0]["custom_id"],
        "body": {
            "id": f"cmpl-{lines[0]['custom_id']}",
            "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
        },
    }
    assert (c.done, c.succeeded, c.input_tokens, c.output_tokens) == (50, 50, 250, 100)
    assert fake.models == {"dep"} and not outcome.interrupted and not outcome.gave_up
    assert {h for h, _ in fake.calls} == {"r1.test", "r2.test"}  # both replicas used


async def test_4xx_is_written_as_an_error_and_not_retried(tmp_path: Path) -> None:
    fake = Fake(script={"c1": [400], "c2": [404]})
    _, c, lines = await run(tmp_path, fake, reqs(3))
    by_id = {line["custom_id"]: line for line in lines}
    assert by_id["c1"]["error"] == {"code": "BadRequestError", "message": "status 400"}
    assert by_id["c1"]["response"]["status_code"] == 400  # type: ignore[index]
    assert by_id["c2"]["error"] is not None and by_id["c0"]["error"] is None
    assert Tally(cid for _, cid in fake.calls) == {"c0": 1, "c1": 1, "c2": 1}
    assert (c.failed, c.succeeded, c.retries) == (2, 1, 0)


async def test_5xx_429_and_broken_connections_are_retried_on_another_replica(tmp_path: Path) -> None:
    fake = Fake(script={"c0": [500, 429, "reset"], "c1": [502]})
    _, c, lines = await run(tmp_path, fake, reqs(2), concurrency=1)
    assert ids(lines) == {"c0": 1, "c1": 1} and all(line["error"] is None for line in lines)
    c0 = [h for h, cid in fake.calls if cid == "c0"]
    assert len(c0) == 4 and all(a != b for a, b in itertools.pairwise(c0))  # alternates replicas
    assert c.retries == 4


async def test_retries_run_out_and_the_request_is_left_for_a_resume(tmp_path: Path) -> None:
    fake = Fake(script={"c1": [500] * 10})
    outcome, c, lines = await run(tmp_path, fake, reqs(3), max_attempts=3)
    assert outcome.gave_up == ["c1"] and "c1" not in ids(lines) and c.remaining == 1
    fake.script.clear()
    _, c2, lines2 = await run(tmp_path, fake, reqs(3))
    assert ids(lines2) == {"c0": 1, "c1": 1, "c2": 1} and c2.done == 1


async def test_resume_sends_only_missing_ids(tmp_path: Path) -> None:
    fake = Fake()
    await run(tmp_path, fake, reqs(5))
    fake.calls.clear()
    _, c, lines = await run(tmp_path, fake, reqs(8))
    assert sorted(cid for _, cid in fake.calls) == ["c5", "c6", "c7"]
    assert ids(lines) == Tally(f"c{i}" for i in range(8)) and c.already_done == 5


async def test_a_refusing_replica_is_set_aside_and_nothing_is_lost(tmp_path: Path) -> None:
    fake = Fake(down={"r1.test"})
    _, c, lines = await run(tmp_path, fake, reqs(40))
    assert ids(lines) == Tally(f"c{i}" for i in range(40))
    assert {h for h, _ in fake.calls} == {"r2.test"}
    assert c.unavailable >= 1 and c.retries == 0  # refusals spend no attempt


async def test_no_replica_reachable_pauses_until_one_comes_back(tmp_path: Path) -> None:
    def revive(f: Fake) -> None:
        if f.health_checks >= 4:
            f.down.discard("r2.test")

    fake = Fake(down={"r1.test", "r2.test"}, on_health=revive)
    _, c, lines = await run(tmp_path, fake, reqs(10), max_attempts=1)
    assert ids(lines) == Tally(f"c{i}" for i in range(10))
    assert c.paused_s > 0 and c.retries == 0


async def test_gives_up_after_the_pause_timeout(tmp_path: Path) -> None:
    fake = Fake(down={"r1.test", "r2.test"})
    outcome, c, lines = await run(tmp_path, fake, reqs(5), pause_timeout_s=0.3)
    assert lines == [] and c.remaining == 5
    assert not outcome.interrupted and "no replica reachable" in outcome.reason


async def test_stop_writes_out_what_it_has_and_a_resume_finishes(tmp_path: Path) -> None:
    fake = Fake(delay_s=0.01)
    out = OutputFile(tmp_path / "out.jsonl")
    out.open()
    counters = Counters(total=200)
    runner = BatchRunner(
        URLS, options(concurrency=8, grace_s=0.0), out, counters, transport=httpx.MockTransport(fake)
    )
    task = asyncio.create_task(runner.run(reqs(200)))
    while counters.done < 20:
        await asyncio.sleep(0.005)
    runner.stop(signum=2)
    outcome = await task
    out.close()
    first = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert outcome.interrupted and outcome.signal == 2
    assert 20 <= len(first) < 200 and len(first) == counters.done
    _, _, lines = await run(tmp_path, Fake(), reqs(200))
    assert ids(lines) == Tally(f"c{i}" for i in range(200))


async def test_replica_list_follows_the_store(tmp_path: Path) -> None:
    fake = Fake(delay_s=0.002)
    out = OutputFile(tmp_path / "out.jsonl")
    out.open()
    counters = Counters(total=60)
    urls = [["http://r2.test"]]
    runner = BatchRunner(
        [],
        options(refresh_s=0.01),
        out,
        counters,
        refresh=lambda: urls[0],
        transport=httpx.MockTransport(fake),
    )
    outcome = await runner.run(reqs(60))
    out.close()
    assert counters.done == 60 and not outcome.gave_up
    assert {h for h, _ in fake.calls} == {"r2.test"}


@pytest.mark.parametrize("route", ["round_robin", "least_outstanding"])
async def test_routes(tmp_path: Path, route: str) -> None:
    fake = Fake()
    _, c, _ = await run(tmp_path, fake, reqs(20), route=route)
    assert c.done == 20


async def test_a_refused_key_stops_the_job_and_records_nothing_for_it(tmp_path: Path) -> None:
    # Old code: a wrong API key wrote 400 final error lines, and the re-run with the right key sent nothing.
    fake = Fake(script={f"c{i}": [401] for i in range(40)})
    outcome, _, lines = await run(tmp_path, fake, reqs(40), concurrency=2)
    assert "refused the credentials (401)" in outcome.reason and not outcome.interrupted
    assert not any(line["response"]["status_code"] == 401 for line in lines)  # type: ignore[index]
    assert len(fake.calls) < 40  # stopped, not sent to the end
    # The right key: every request is sent and answered, none counted as done before.
    _, _, lines = await run(tmp_path, Fake(), reqs(40))
    assert ids(lines) == Tally(f"c{i}" for i in range(40)) and all(line["error"] is None for line in lines)


def test_an_output_that_is_not_a_regular_file_is_refused() -> None:
    # Old code: `-o /dev/full` read endless zeros as its checkpoint until the kernel killed it (~24 GB).
    from llmctl.errors import LlmctlError

    with pytest.raises(LlmctlError, match="/dev/full is not a regular file"):
        OutputFile(Path("/dev/full")).open()


async def test_an_output_deleted_mid_run_stops_the_job(tmp_path: Path) -> None:
    # Old code: every later result went to the unlinked file and the run reported "done, 400 succeeded".
    fake = Fake(delay_s=0.01)
    out = OutputFile(tmp_path / "out.jsonl")
    out.open()
    counters = Counters(total=400)
    runner = BatchRunner(URLS, options(concurrency=4), out, counters, transport=httpx.MockTransport(fake))

    async def delete_soon() -> None:
        while not (tmp_path / "out.jsonl").stat().st_size:
            await asyncio.sleep(0.01)
        (tmp_path / "out.jsonl").unlink()

    deleter = asyncio.create_task(delete_soon())
    try:
        outcome = await runner.run(reqs(400))
    finally:
        out.close()
        await deleter
    assert "was deleted during the run" in outcome.reason
    assert counters.done < 400


async def test_a_full_disk_stops_the_job_with_one_line_and_keeps_what_was_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from llmctl.batch import outfile

    real, calls = outfile.os.write, 0

    def write(fd: int, data: object) -> int:
        nonlocal calls
        calls += 1
        if calls > 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data)  # type: ignore[arg-type]

    monkeypatch.setattr(outfile.os, "write", write)
    outcome, c, lines = await run(tmp_path, Fake(delay_s=0.005), reqs(200), flush_lines=10)
    assert (
        "No space left on device" in outcome.reason and "re-run the same command to resume" in outcome.reason
    )
    assert 0 < len(lines) == c.done < 200
