"""`python -m llmctl.engines.emulator --flavour vllm|sglang <the engine's own arguments>`."""

from __future__ import annotations

import asyncio
import signal
import sys
import traceback

from aiohttp import web

from llmctl.engines.emulator.config import ConfigError, UsageError, parse_config
from llmctl.engines.emulator.logs import engine_log, log
from llmctl.engines.emulator.server import EmulatorApp, Engine
from llmctl.engines.emulator.startup import StartupError, cold_start_seconds, prepare
from llmctl.engines.emulator.timing import step_timer
from llmctl.engines.snapshots import PINNED_VERSIONS

SHUTDOWN_S = 1.0  # after SIGTERM, how long in-flight requests may still write before they are dropped

USAGE = "usage: python -m llmctl.engines.emulator --flavour {vllm,sglang} [ENGINE ARGS ...]"
HELP = f"""{USAGE}

An emulated vLLM or SGLang server: the engine's HTTP API, health, metrics and sleep/wake endpoints, timed by
llmctl's performance model instead of a GPU. ENGINE ARGS are exactly those of `vllm serve` (vLLM
{PINNED_VERSIONS["vllm"]}) or `python -m sglang.launch_server` (SGLang {PINNED_VERSIONS["sglang"]}); valid flags the
emulator does not model are accepted and ignored.

environment:
  LLMCTL_EMULATED_GPU         catalog GPU the replica stands in for (default H100-SXM)
  LLMCTL_EMULATOR_TIME_SCALE  multiplies every modelled duration: cold start, engine steps (default 1.0)
  LLMCTL_EMULATOR_PROFILE     profile file (llmctl perf calibrate -o FILE) whose factors time the steps
"""


async def _interruptible_sleep(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep unless SIGTERM comes first; True when it did (the caller should exit at once)."""
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        return False
    return True


async def serve(argv: list[str]) -> int:
    if "-h" in argv or "--help" in argv:
        sys.stdout.write(HELP)
        return 0
    if len(argv) < 2 or argv[0] != "--flavour" or argv[1] not in ("vllm", "sglang"):
        log(USAGE)
        log("error: the first arguments must be --flavour vllm or --flavour sglang")
        return 2
    flavour = argv[1]
    try:
        config = parse_config(flavour, argv[2:])
    except UsageError as exc:
        log(USAGE)
        log(f"error: {exc}")
        return 2
    except ConfigError as exc:
        engine_log(flavour, f"llmctl emulator: {exc}", "ERROR")
        return 1
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    if flavour == "vllm":
        engine_log(flavour, f"vLLM API server version {PINNED_VERSIONS['vllm']} (llmctl emulated engine)")
    else:
        engine_log(flavour, f"SGLang {PINNED_VERSIONS['sglang']} (llmctl emulated engine)")
    engine_log(flavour, f"model={config.model.name} tp={config.tp} gpu={config.gpu} dtype={config.dtype}")
    try:
        replica = prepare(config)
    except StartupError as exc:
        # A real engine gets this far into loading before it fails; a readiness wait sees the same delay.
        if not await _interruptible_sleep(stop, exc.after_s * config.time_scale):
            for line in exc.lines:
                log(line)
        return 1
    engine_log(flavour, f"loading (modelled cold start {cold_start_seconds(config):.1f} s)")
    # Real engines open their port only once the model is loaded: so does the emulator. A SIGTERM while
    # "loading" ends it at once, as it would a real engine.
    if await _interruptible_sleep(stop, cold_start_seconds(config) * config.time_scale):
        return 0
    tokens = replica.kv_capacity
    if flavour == "vllm":
        engine_log(flavour, f"GPU KV cache size: {tokens:,} tokens", source="kv_cache_utils.py")
        engine_log(
            flavour,
            f"Maximum concurrency for {config.max_model_len:,} tokens per request: "
            f"{tokens / config.max_model_len:.2f}x",
            source="kv_cache_utils.py",
        )
    else:
        engine_log(
            flavour,
            f"max_total_num_tokens={tokens}, chunked_prefill_size={config.max_batched_tokens}, "
            f"max_running_requests={config.max_seqs}, context_len={config.max_model_len}",
        )
    engine = Engine(config, step_timer(replica.profile, replica.spec), replica.kv_capacity)
    # Cancel a handler whose client hung up, so its request is aborted and frees its batch slot and KV
    # cache, as both engines do on disconnect.
    # On SIGTERM the engine loop stops, so in-flight requests can never finish: drop them after a moment
    # (their clients see the connection end, as with a real engine shutting down) instead of aiohttp's
    # default 60 s wait, which outlasted llmctl's stop grace and ended in a SIGKILL.
    runner = web.AppRunner(
        EmulatorApp(engine).build(), access_log=None, handler_cancellation=True, shutdown_timeout=SHUTDOWN_S
    )
    await runner.setup()
    try:
        await web.TCPSite(runner, config.host, config.port).start()
    except OSError as exc:
        # uvicorn's own wording, which both engines print when the port is taken.
        log(
            f"ERROR:    [Errno {exc.errno}] error while attempting to bind on address "
            f"({config.host!r}, {config.port}): {(exc.strerror or '').lower()}"
        )
        await runner.cleanup()
        return 1
    if flavour == "vllm":
        engine_log(flavour, f"Starting vLLM API server 0 on http://{config.host}:{config.port}")
        log("INFO:     Application startup complete.")
    else:
        log(f"INFO:     Uvicorn running on http://{config.host}:{config.port} (Press CTRL+C to quit)")
        log("The server is fired up and ready to roll!")
    loop_task = asyncio.create_task(engine.run())
    stop_task = asyncio.create_task(stop.wait())
    await asyncio.wait({loop_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
    code = 0
    if loop_task.done():
        # The engine loop only ends by a bug; dying loudly beats a server that accepts requests and never answers.
        trace = "".join(traceback.format_exception(loop_task.exception()))
        engine_log(flavour, f"llmctl emulator: engine loop failed:\n{trace}", "ERROR")
        code = 1
    loop_task.cancel()
    stop_task.cancel()
    await runner.cleanup()
    log("INFO:     Shutting down")
    return code


def main() -> None:
    sys.exit(asyncio.run(serve(sys.argv[1:])))


if __name__ == "__main__":
    main()
