"""The event loop the proxy runs on: uvloop when installed, asyncio's own otherwise."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any


def run(main: Coroutine[Any, Any, Any]) -> Any:
    """asyncio.run, on uvloop where it is available (libuv: less overhead per request).

    PLANO_EVENT_LOOP=asyncio keeps asyncio's own loop (for debugging, or to compare).
    """
    if os.environ.get("PLANO_EVENT_LOOP") == "asyncio":
        return asyncio.run(main)
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)
