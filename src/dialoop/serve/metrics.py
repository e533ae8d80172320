"""Prometheus metrics of one server: requests, latency, tokens, the queue, adapters.

Each app has its own registry (not prometheus_client's global one), so that
several apps in one process (tests) do not mix their counts. Values that live
elsewhere (queue depth, the serving adapter versions) are read when scraped.
Other parts add their own collectors with :meth:`Metrics.register`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dialoop.assistant import Reply
from dialoop.serve.scheduler import Scheduler

__all__ = ["CONTENT_TYPE", "Metrics", "MetricsMiddleware"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_RATE_BUCKETS = (1, 2, 5, 10, 20, 30, 50, 75, 100, 150, 200, 300, 500)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class Metrics:
    """The counters, histograms and gauges of one app."""

    def __init__(self, scheduler: Scheduler, adapter_heads: Callable[[], dict[str, int | None]]):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("dialoop_http_requests", "HTTP requests answered.",
                                ["method", "route", "status"], registry=r)
        self.latency = Histogram("dialoop_http_request_duration_seconds",
                                 "Time from request to the last byte of the response.",
                                 ["route"], buckets=_LATENCY_BUCKETS, registry=r)
        self.answers = Counter("dialoop_answers", "Answers generated, by how they ended.",
                               ["finish_reason"], registry=r)
        self.first_token = Histogram("dialoop_time_to_first_token_seconds",
                                     "Engine time to the first token of an answer.",
                                     buckets=_LATENCY_BUCKETS, registry=r)
        self.decode_rate = Histogram("dialoop_decode_tokens_per_second",
                                     "Tokens per second of each answer after its first token.",
                                     buckets=_RATE_BUCKETS, registry=r)
        self.completion_tokens = Counter("dialoop_completion_tokens",
                                         "Tokens generated.", registry=r)
        self.prompt_tokens = Counter("dialoop_prompt_tokens", "Prompt tokens.", registry=r)
        self.cached_tokens = Counter("dialoop_cached_prompt_tokens",
                                     "Prompt tokens whose KV state was reused.", registry=r)
        Gauge("dialoop_queue_depth", "Answers admitted and waiting for an engine.",
              registry=r).set_function(lambda: scheduler.waiting)
        Gauge("dialoop_answers_running", "Answers being generated now.",
              registry=r).set_function(lambda: scheduler.running)
        Gauge("dialoop_queue_capacity", "Answers that may run or wait before a 503.",
              registry=r).set_function(lambda: scheduler.capacity)
        self.register(_AdapterVersions(adapter_heads))

    def register(self, collector: Collector) -> None:
        """Add a collector (lessons, knowledge, …) read at every scrape."""
        self.registry.register(collector)

    def observe_reply(self, reply: Reply) -> None:
        u = reply.usage
        self.answers.labels(reply.finish_reason).inc()
        self.completion_tokens.inc(u.completion_tokens)
        self.prompt_tokens.inc(u.prompt_tokens)
        self.cached_tokens.inc(u.cached_tokens)
        if u.first_token_seconds is not None:
            self.first_token.observe(u.first_token_seconds)
            decode = u.seconds - u.first_token_seconds
            if u.completion_tokens > 1 and decode > 0:
                self.decode_rate.observe((u.completion_tokens - 1) / decode)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _AdapterVersions(Collector):
    def __init__(self, heads: Callable[[], dict[str, int | None]]) -> None:
        self._heads = heads

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily("dialoop_adapter_version",
                                   "Serving version of each adapter line (0: the base model).",
                                   labels=["line"])
        for line, version in sorted(self._heads().items()):
            family.add_metric([line], version or 0)
        yield family


class MetricsMiddleware:
    """Counts every HTTP request and times it to its last byte (streams included), by
    method, route template and status: a bounded set of series whatever clients send.

    Written as plain ASGI rather than with ``BaseHTTPMiddleware``, which would end
    the timing when a streaming response starts, not when it ends.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_and_watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        finally:
            method, route = _labels(scope)
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - start)


def _labels(scope: Scope) -> tuple[str, str]:
    """The method and route a request is counted under.

    Both come from the client, so each is taken only from a fixed set (the standard
    methods, the app's route templates); anything else is "other" or "unmatched".
    Otherwise every made-up method or path would be a new time series, kept forever.
    """
    method = scope["method"] if scope["method"] in _METHODS else "other"
    route = getattr(scope.get("route"), "path", None)
    return method, route if isinstance(route, str) and route else "unmatched"
