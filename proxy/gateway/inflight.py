"""The requests a listener is serving, so that a shutdown can wait for them, and end on
time those that do not finish.

aiohttp's own graceful shutdown waits its timeout for handlers, then cancels them and
waits the timeout again, and a cancelled stream just stops: the client gets a cut body
and the record says the client disconnected. Here the gateway ends them itself, at its
bound: each request is marked as ended by a shutdown and cancelled, and the pipeline,
seeing the mark, answers in the client's format (an error event for a stream already
under way, a 503 before that) instead of vanishing.
"""

from __future__ import annotations

import asyncio

from proxy.gateway.exchange import Exchange, Outcome

# After the bound, how long the requests ended by it get to write their last words.
CUT_GRACE_S = 1.0
# What the client and the record are told.
SHUTDOWN_MESSAGE = "the Plano gateway shut down before this request finished"


class InFlight:
    __slots__ = ("_tasks",)

    def __init__(self) -> None:
        self._tasks: dict[asyncio.Task, Exchange] = {}

    def __len__(self) -> int:
        return len(self._tasks)

    def add(self, exchange: Exchange) -> asyncio.Task | None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks[task] = exchange
        return task

    def discard(self, task: asyncio.Task | None) -> None:
        self._tasks.pop(task, None)

    async def drain(self, deadline: float, grace: float = CUT_GRACE_S) -> int:
        """Wait until nothing is in flight or the loop's clock reaches `deadline`; then end
        what is left and give it `grace` seconds to do so. Returns how many were ended."""
        loop = asyncio.get_running_loop()
        # Requests can still arrive while this waits (their bodies were being read when the
        # listener stopped accepting): wait on whatever is in flight, until the deadline.
        while self._tasks and (left := deadline - loop.time()) > 0:
            await asyncio.wait(set(self._tasks), timeout=left, return_when=asyncio.FIRST_COMPLETED)
        cut = [(task, exchange) for task, exchange in self._tasks.items() if not task.done()]
        for task, exchange in cut:
            exchange.forced_outcome = Outcome.SHUTDOWN
            task.cancel()
        if cut:
            await asyncio.wait([task for task, _ in cut], timeout=grace)
        return len(cut)


def absorb_shutdown(exchange: Exchange) -> bool:
    """Whether a CancelledError this request's task got is the shutdown's (not the client's
    going away): then the task takes the cancellation back and answers instead."""
    if exchange.forced_outcome is not Outcome.SHUTDOWN:
        return False
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()
    return True
