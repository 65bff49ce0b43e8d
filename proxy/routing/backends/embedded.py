"""The in-process CPU router: MiniLM embeddings in numpy, offline, a few ms a decision."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from proxy.routing.backends.base import RouterAnswer, RouterUnavailable
from proxy.routing.conversation import Turn
from proxy.routing.routes import Route

NAME = "embedded"
MAX_TEXT_CHARS = 4096
# Route sets seen recently: the config's, and per-request ones.
ROUTE_TEXT_CACHE_SIZE = 32
# How far ahead of the runner-up a clause's route must be to add an agent of its own.
CLAUSE_MARGIN = 0.5


class EmbeddedBackend:
    name = NAME

    def __init__(
        self,
        model_path: str | None = None,
        threshold: float | None = None,
        *,
        per_clause: bool = False,
    ):
        """`per_clause`: also score each clause of the last user turn on its own, and name
        every route a clause clearly asks for, in order (agents: several may run)."""
        self.model_path = model_path
        self.threshold = threshold
        self.per_clause = per_clause
        self._router = None
        # numpy releases the GIL in its kernels: scoring off the event loop keeps a 2 ms
        # decision from stalling every other request on the listener.
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="plano-router")
        self._loading: asyncio.Future | None = None
        # The same routes come with every request: their RouteText tuple is made once, and
        # being the same objects, the router's index lookup compares them by identity. A plain
        # dict (single operations are atomic), so importing this module stays light.
        self._texts: dict[tuple[Route, ...], tuple] = {}

    async def start(self) -> None:
        if self._router is not None:
            return
        if self._loading is None:
            self._loading = asyncio.get_running_loop().run_in_executor(self._executor, self._load)
        await asyncio.shield(self._loading)

    def _load(self) -> None:
        from proxy.routing.embedded.router import EmbeddedRouter
        from proxy.routing.embedded.weights import RouterModelUnavailable

        try:
            self._router = EmbeddedRouter.load(self.model_path)
        except RouterModelUnavailable as exc:
            raise RouterUnavailable(str(exc)) from None

    def load_sync(self) -> None:
        """For the CLI: load in the calling thread, no event loop needed."""
        if self._router is None:
            self._load()

    def prepare(self, routes: Sequence[Route]) -> None:
        """Embed a route set ahead of traffic (at startup), so no request pays for it."""
        if self._router is not None and routes:
            self._router.index(self._route_texts(routes))

    async def decide(self, turns: Sequence[Turn], routes: Sequence[Route]) -> RouterAnswer:
        await self.start()
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, self.decide_sync, turns, routes
        )

    def decide_sync(self, turns: Sequence[Turn], routes: Sequence[Route]) -> RouterAnswer:
        if self._router is None:
            self._load()
        # The encoder reads 256 tokens of a turn; the rest need not be tokenized at all.
        clipped = [(role, text[:MAX_TEXT_CHARS]) for role, text in turns]
        result = self._router.score(clipped, self._route_texts(routes), threshold=self.threshold)
        best = result.scores.get(result.best, 0.0)
        # How far the decision is from flipping: to the runner-up route, or across the
        # threshold to no route. The hybrid backend escalates when this is small.
        margin = min(result.margin, abs(best - result.threshold))
        if self.per_clause and routes:
            named = self._clause_routes(turns, routes)
            if len(named) > 1:
                names = ", ".join(name for name, _ in named)
                return RouterAnswer(
                    route=named[0][0],
                    backend=NAME,
                    scores=dict(result.scores),
                    margin=min(m for _, m in named),
                    named=tuple(name for name, _ in named),
                    detail=f"one route per request in the message: {names}",
                )
        if not routes:
            detail = "no routes"
        elif result.route is None:
            detail = f"best {result.best} scored {best:.3f} < threshold {result.threshold:.3f}"
        else:
            detail = (
                f"{result.route} {best:.3f}, {result.margin:.3f} ahead of the runner-up, "
                f"threshold {result.threshold:.3f}"
            )
        return RouterAnswer(
            route=result.route,
            backend=NAME,
            scores=dict(result.scores),
            margin=margin,
            detail=detail,
        )

    def _clause_routes(
        self, turns: Sequence[Turn], routes: Sequence[Route]
    ) -> list[tuple[str, float]]:
        """(route, margin) per clause of the last user turn that clearly asks for one."""
        from proxy.routing.embedded.clauses import split_clauses

        if not turns or turns[-1][0] != "user":
            return []
        clauses = split_clauses(turns[-1][1][:MAX_TEXT_CHARS])
        if len(clauses) < 2:
            return []
        texts = self._route_texts(routes)
        found: list[tuple[str, float]] = []
        for clause in clauses:
            result = self._router.score([("user", clause)], texts, threshold=self.threshold)
            if result.route is None or result.margin < CLAUSE_MARGIN:
                continue
            if all(result.route != name for name, _ in found):
                found.append((result.route, result.margin))
        return found

    def _route_texts(self, routes: Sequence[Route]) -> tuple:
        key = routes if isinstance(routes, tuple) else tuple(routes)
        try:
            texts = self._texts.get(key)
        except TypeError:  # a route with unhashable fields: convert, uncached
            return tuple(_route_text(r) for r in routes)
        if texts is None:
            texts = tuple(_route_text(r) for r in routes)
            if len(self._texts) >= ROUTE_TEXT_CACHE_SIZE:
                self._texts.clear()  # per-request route sets churn; the config's comes back
            self._texts[key] = texts
        return texts

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def describe(self) -> str:
        return "embedded CPU router (all-MiniLM-L6-v2)"


def _route_text(route: Route):
    from proxy.routing.embedded.router import RouteText

    return RouteText(route.name, route.description, tuple(route.examples), tuple(route.learned))
