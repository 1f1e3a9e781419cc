"""`python -m llmctl.engines.emulator --flavour vllm|sglang <the engine's own arguments>`."""

from __future__ import annotations

import asyncio
import signal
import sys
import traceback

from aiohttp import web

from llmctl.engines.emulator.config import UsageError, log, parse_config
from llmctl.engines.emulator.server import EmulatorApp, Engine
from llmctl.engines.emulator.startup import StartupError, cold_start_seconds, kv_capacity, profile_of, spec_of
from llmctl.engines.emulator.timing import step_timer
from llmctl.engines.snapshots import PINNED_VERSIONS

USAGE = "usage: python -m llmctl.engines.emulator --flavour {vllm,sglang} [ENGINE ARGS ...]"
HELP = f"""{USAGE}

An emulated vLLM or SGLang server: the engine's HTTP API, health, metrics and sleep/wake endpoints, timed by
llmctl's performance model instead of a GPU. ENGINE ARGS are exactly those of `vllm serve` (vLLM
{PINNED_VERSIONS["vllm"]}) or `python -m sglang.launch_server` (SGLang {PINNED_VERSIONS["sglang"]}); valid flags the
emulator does not model are accepted and ignored.

environment:
  LLMCTL_EMULATED_GPU         catalog GPU the replica stands in for (default H100-SXM)
  LLMCTL_EMULATOR_TIME_SCALE  multiplies every modelled duration: cold start, engine steps (default 1.0)
"""


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
    try:
        capacity = kv_capacity(config)
    except StartupError as exc:
        log(str(exc))
        return 1
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    log(
        f"INFO llmctl emulated {flavour}: {config.model.name} on {config.tp} x {config.gpu}, "
        f"{capacity} KV tokens; loading (modelled cold start {cold_start_seconds(config):.1f} s)"
    )
    # Real engines open their port only once the model is loaded: so does the emulator. A SIGTERM while
    # "loading" ends it at once, as it would a real engine.
    try:
        await asyncio.wait_for(stop.wait(), cold_start_seconds(config) * config.time_scale)
        return 0
    except TimeoutError:
        pass
    engine = Engine(config, step_timer(profile_of(config), spec_of(config)), capacity)
    runner = web.AppRunner(EmulatorApp(engine).build(), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, config.host, config.port).start()
    except OSError as exc:
        log(
            f"ERROR [Errno {exc.errno}] error while attempting to bind on address ({config.host!r}, {config.port})"
        )
        await runner.cleanup()
        return 1
    if flavour == "vllm":
        log(f"INFO Starting vLLM API server on http://{config.host}:{config.port}")
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
        log("ERROR engine loop failed:\n" + "".join(traceback.format_exception(loop_task.exception())))
        code = 1
    loop_task.cancel()
    stop_task.cancel()
    await runner.cleanup()
    log("INFO Shutting down")
    return code


def main() -> None:
    sys.exit(asyncio.run(serve(sys.argv[1:])))


if __name__ == "__main__":
    main()
