"""Live pages' server-sent events: a view rendered again after every change, sent when it differs."""
from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from protocol.errors import ClinicflowError


def sse_stream(request: Request, render: Callable[[], dict], *, wait_change: Callable[[int, float], Any],
               version: Callable[[], int], keepalive: float) -> StreamingResponse:
    """Server-sent events of ``render()``, sent again whenever it changes (woken by the broadcaster)."""
    async def events() -> AsyncIterator[str]:
        last = None
        seen = version()
        while not await request.is_disconnected():
            try:
                data = await run_in_threadpool(render)
            except ClinicflowError as exc:
                yield f"event: error\ndata: {json.dumps({'detail': str(exc)})}\n\n"
                return
            text = json.dumps(data, ensure_ascii=False, default=str)
            if text != last:
                yield f"data: {text}\n\n"
                last = text
            else:
                yield ": keep-alive\n\n"
            seen = await wait_change(seen, keepalive)
    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

