"""`ratelimits` on the request path: take the input tokens before dispatch, answer 429 over
budget, debit the output tokens when the answer ends.

The gateway calls `admit` once the request's model is resolved and `settle` when its answer
is over (a stream included). Everything this module knows about a request's limits rides
on `exchange.ratelimit`, so the answer's headers, the access log and the telemetry worker
(which counts the metrics) all read the same thing.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from aiohttp import web

from proxy.canonical import ChatRequest
from proxy.config.model import Config
from proxy.gateway.errors import ClientError
from proxy.gateway.exchange import Exchange, RateLimitMark
from proxy.limits.buckets import Buckets, MemoryBuckets, Take
from proxy.limits.match import Match, Matcher, SelectorError
from proxy.limits.tokens import StreamTally, TokenCounter, counter

log = logging.getLogger("plano.limits")


@dataclass(slots=True)
class Admission:
    """A request let through: what it took, for the output debit at its end."""

    matches: list[Match]
    input_tokens: int


class RateLimiter:
    """One per model listener; shared by its requests."""

    def __init__(self, config: Config, buckets: Buckets | None = None):
        self.matcher = Matcher(config)
        self.buckets: Buckets = buckets if buckets is not None else MemoryBuckets()

    @classmethod
    def for_config(cls, config: Config, shared_state: object = None) -> RateLimiter | None:
        """None when no limit is configured: the request path then skips it entirely."""
        if not config.ratelimits:
            return None
        return cls(config, buckets_for(shared_state))

    def warm(self) -> None:
        """Load the encoder (about half a second): at start-up, never on a request.
        `counter()` keeps it for the process."""
        counter()

    async def admit(
        self, request: web.Request, exchange: Exchange, chat: ChatRequest, model: str
    ) -> Admission | None:
        """Take the request's input tokens from each budget it falls under. Raises a
        ClientError: 400 for a selector header that cannot be used, 429 over budget."""
        try:
            matches = self.matcher.match(model, request.headers, exchange.client_key_id)
        except SelectorError as exc:
            raise ClientError(400, str(exc)) from None
        if not matches:
            return None
        cost = await counter().request_async(chat)
        for match in matches:  # before any take: waiting would not help
            limit = match.rule.limit
            if cost > limit.tokens:
                take = Take(False, limit.tokens, limit.tokens, limit.period_s, 0.0)
                exchange.ratelimit = _mark(match, take, model, limited=True)
                raise _too_large(cost, match, take)
        # All or nothing: a budget that refuses (or a store that fails closed) gives back
        # what the budgets before it took, so a request refused by a narrow budget does
        # not drain a wider one it shares.
        taken: list[Match] = []
        tightest: tuple[Match, Take] | None = None
        try:
            for match in matches:
                limit = match.rule.limit
                take = await self.buckets.take(match.bucket, cost, limit.tokens, limit.period_s)
                if not take.allowed:
                    exchange.ratelimit = _mark(match, take, model, limited=True)
                    raise _over_budget(cost, match, take)
                taken.append(match)
                if tightest is None or take.remaining < tightest[1].remaining:
                    tightest = (match, take)
        except Exception:
            await self._refund(taken, cost)
            raise
        assert tightest is not None
        exchange.ratelimit = _mark(*tightest, model, limited=False)
        if exchange.stream:
            exchange.output_tally = StreamTally()
        return Admission(matches, cost)

    async def _refund(self, taken: list[Match], cost: int) -> None:
        for match in taken:
            limit = match.rule.limit
            try:
                await self.buckets.refund(match.bucket, cost, limit.tokens, limit.period_s)
            except ClientError:
                pass  # fail_closed store: the request is refused already
            except Exception:
                log.exception("could not give back %d tokens to a rate-limit budget", cost)

    async def settle(self, admission: Admission, exchange: Exchange) -> None:
        """Debit what the answer cost beyond the input taken: its output tokens, and input
        the upstream counted above the estimate. Never fails the request."""
        extra = _extra_tokens(admission, exchange, counter())
        if extra <= 0:
            return
        for match in admission.matches:
            limit = match.rule.limit
            try:
                await self.buckets.debit(match.bucket, extra, limit.tokens, limit.period_s)
            except ClientError:
                pass  # fail_closed store: the answer is already out; nothing to refuse
            except Exception:
                log.exception("could not debit %d tokens from a rate-limit budget", extra)


def buckets_for(shared_state: object) -> Buckets:
    """RedisBuckets on `shared_state` when it is configured (every instance one budget),
    else this process's memory. Imported by name: the Redis client loads only when used."""
    if shared_state is None:
        return MemoryBuckets()
    from proxy.limits.redis_buckets import RedisBuckets

    return RedisBuckets(shared_state)


def _extra_tokens(admission: Admission, exchange: Exchange, tokens: TokenCounter) -> int:
    usage = exchange.usage
    if usage is not None:
        return usage.output_tokens + max(usage.input_tokens - admission.input_tokens, 0)
    result = exchange.result
    if result is None:
        # A stream that reported no usage: the text it relayed (none: an error).
        tally = exchange.output_tally
        return tally.total() if tally is not None else 0
    return sum(tokens.text(part.text) for part in result.content) + sum(
        tokens.text(call.arguments) for call in result.tool_calls
    )


def _mark(match: Match, take: Take, model: str, *, limited: bool) -> RateLimitMark:
    return RateLimitMark(
        model=model,
        selector=match.rule.label,
        limited=limited,
        limit=take.limit,
        remaining=take.remaining,
        reset_s=take.reset_s,
    )


def _over_budget(cost: int, match: Match, take: Take) -> ClientError:
    limit = match.rule.limit
    wait = format_duration(take.retry_after_s)
    return _rate_limited(
        f"rate limit exceeded for {match.rule.label} on {limit.model}: this request needs "
        f"{cost} tokens and {take.remaining} of {limit.tokens} per {limit.unit} remain; "
        f"try again in {wait}",
        take,
        take.retry_after_s,
    )


def _too_large(cost: int, match: Match, take: Take) -> ClientError:
    limit = match.rule.limit
    return _rate_limited(
        f"rate limit exceeded for {match.rule.label} on {limit.model}: this request needs "
        f"{cost} tokens, more than the whole budget of {limit.tokens} per {limit.unit}; "
        "shorten it",
        take,
        limit.period_s,
    )


def _rate_limited(message: str, take: Take, wait_s: float) -> ClientError:
    headers = limit_headers(take)
    # The SDKs read retry-after-ms first (to the millisecond), then Retry-After (seconds).
    headers["retry-after-ms"] = str(math.ceil(wait_s * 1000))
    return ClientError(429, message, retry_after=str(max(1, math.ceil(wait_s))), headers=headers)


def limit_headers(take: Take | RateLimitMark) -> dict[str, str]:
    """OpenAI's token rate-limit headers."""
    return {
        "x-ratelimit-limit-tokens": str(take.limit),
        "x-ratelimit-remaining-tokens": str(take.remaining),
        "x-ratelimit-reset-tokens": format_duration(take.reset_s),
    }


def format_duration(seconds: float) -> str:
    """OpenAI's form: "6m0s", "1s", "17.28s", "120ms", "1h2m3s"."""
    if seconds < 1:
        return f"{max(math.ceil(seconds * 1000), 0)}ms"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    secs_text = f"{secs:.3f}".rstrip("0").rstrip(".")
    if hours:
        return f"{int(hours)}h{int(minutes)}m{secs_text}s"
    if minutes:
        return f"{int(minutes)}m{secs_text}s"
    return f"{secs_text}s"
