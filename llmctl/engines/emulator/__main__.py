"""`python -m llmctl.engines.emulator --flavour vllm|sglang <the engine's own arguments>`."""

from __future__ import annotations

import asyncio
import signal
import sys

from aiohttp import web

from llmctl.engines.emulator.config import UsageError, log, parse_config
from llmctl.engines.emulator.server import EmulatorApp, Engine
from llmctl.engines.emulator.startup import StartupFailure, cold_start_seconds, kv_capacity, profile_of
from llmctl.perf.step_time import step_model

USAGE = "usage: python -m llmctl.engines.emulator --flavour {vllm,sglang} [ENGINE ARGS ...]"


async def serve(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] != "--flavour" or argv[1] not in ("vllm", "sglang"):
        log(USAGE)
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
    except StartupFailure as exc:
        log(str(exc))
        return 1
    log(
        f"INFO llmctl emulated {flavour}: {config.model.name} on {config.tp} x {config.gpu}, "
        f"{capacity} KV tokens; loading (modelled cold start {cold_start_seconds(config):.1f} s)"
    )
    # Real engines open their port only once the model is loaded: so does the emulator.
    await asyncio.sleep(cold_start_seconds(config) * config.time_scale)
    engine = Engine(config, step_model(profile_of(config)), capacity)
    runner = web.AppRunner(EmulatorApp(engine).build(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, config.host, config.port).start()
    loop_task = asyncio.create_task(engine.run())
    if flavour == "vllm":
        log(f"INFO Starting vLLM API server on http://{config.host}:{config.port}")
    else:
        log("The server is fired up and ready to roll!")
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    loop_task.cancel()
    await runner.cleanup()
    return 0


def main() -> None:
    sys.exit(asyncio.run(serve(sys.argv[1:])))


if __name__ == "__main__":
    main()
