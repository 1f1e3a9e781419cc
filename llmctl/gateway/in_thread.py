"""The gateway on an event loop of its own, in a worker thread: `llmctl controller` runs it beside the
reconcile loop, whose SQLite calls wait (up to its busy timeout) while another process holds the store
locked. On a shared loop every such wait stalled every request and /health; on its own loop the gateway
answers throughout, and reads the store in its own worker thread (llmctl.gateway.store_sync)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable

# serve(stop) starts the gateway on the running loop and returns the coroutine function that shuts it down.
Serve = Callable[[asyncio.Event], Awaitable[Callable[[], Awaitable[None]]]]


class GatewayThread:
    def __init__(self, serve: Serve) -> None:
        self._serve = serve
        self._thread = threading.Thread(target=self._main, name="gateway", daemon=True)
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None

    async def start(self) -> None:
        """Returns once the gateway listens; raises what kept it from starting (a port in use)."""
        self._thread.start()
        await asyncio.to_thread(self._started.wait)
        if self._error is not None:
            await asyncio.to_thread(self._thread.join)
            raise self._error

    async def close(self) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stop.set)
        if self._thread.is_alive():
            await asyncio.to_thread(self._thread.join)

    def _main(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        try:
            close = await self._serve(self._stop)
        except BaseException as exc:  # handed to start(), in the calling thread
            self._error = exc
            self._started.set()
            return
        self._started.set()
        await self._stop.wait()
        await close()
