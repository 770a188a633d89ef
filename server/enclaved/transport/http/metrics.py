"""``GET /metrics``: Prometheus text, names after vLLM's with an ``enclave_`` prefix, in a
registry of its own (not the process-wide default). The labels are ``model_name`` and
``engine`` (the ``[[engines]]`` name of a remote model, ``local`` for a GGUF here), and
``finished_reason`` where vLLM has it: never an agent, a user or any text.

Counters and histograms are fed by ``Telemetry`` as turns end, gRPC and HTTP alike; the
gauges are read from the loaded engines when scraped.

Inter-token latency: the engine times generation per turn, not per token, so each turn adds
its mean interval once per generated token after the first.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from enclaved.domain.models import ModelRegistry
from enclaved.domain.telemetry import Finished, Telemetry
from enclaved.engine import Finish

REASON = {
    Finish.END_OF_TURN: "stop",
    Finish.STOP_STRING: "stop",
    Finish.MAX_TOKENS: "length",
    Finish.CONTEXT_FULL: "length",
    Finish.CANCELLED: "abort",
}
# vLLM's buckets
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0)
ITL_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0)
LATENCY_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0)
MAX_ITL_OBSERVATIONS = 8192  # per turn
LABELS = ["model_name", "engine"]


def labels(model: str) -> list[str]:
    """``smollm2`` → (smollm2, local); ``llama-3.1-70b@gpu`` → (llama-3.1-70b, gpu)."""
    name, _, engine = model.partition("@")
    return [name, engine or "local"]


class Metrics:
    def __init__(self, models: ModelRegistry, telemetry: Telemetry) -> None:
        r = self.registry = CollectorRegistry()
        label = LABELS
        self.prompt_tokens = Counter("enclave_prompt_tokens", "Prompt tokens processed (cached ones included).", label, registry=r)
        self.generation_tokens = Counter("enclave_generation_tokens", "Tokens generated.", label, registry=r)
        self.success = Counter(
            "enclave_request_success", "Turns that ended, by why (stop, length, abort).", [*label, "finished_reason"], registry=r
        )
        self.ttft = Histogram("enclave_time_to_first_token_seconds", "Time to the first token.", label, buckets=TTFT_BUCKETS, registry=r)
        self.itl = Histogram("enclave_inter_token_latency_seconds", "Time between tokens.", label, buckets=ITL_BUCKETS, registry=r)
        self.e2e = Histogram("enclave_e2e_request_latency_seconds", "Whole turn.", label, buckets=LATENCY_BUCKETS, registry=r)
        self.queue = Histogram("enclave_request_queue_time_seconds", "Waiting for a slot.", label, buckets=LATENCY_BUCKETS, registry=r)
        r.register(_Engines(models))
        telemetry.listen(self.observe)

    def observe(self, done: Finished) -> None:
        m, res = labels(done.model), done.result
        self.prompt_tokens.labels(*m).inc(res.prompt_tokens)
        self.generation_tokens.labels(*m).inc(res.completion_tokens)
        self.success.labels(*m, REASON[res.finish]).inc()
        self.e2e.labels(*m).observe(done.seconds)
        self.queue.labels(*m).observe(res.queue_ms / 1000)
        if res.completion_tokens:
            self.ttft.labels(*m).observe(res.time_to_first_token_ms / 1000)
        gaps = res.completion_tokens - 1
        if gaps > 0 and res.generation_ms > 0:
            itl = self.itl.labels(*m)
            mean = res.generation_ms / 1000 / gaps
            for _ in range(min(gaps, MAX_ITL_OBSERVATIONS)):
                itl.observe(mean)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _Engines(Collector):
    """Live figures of the loaded models, read at scrape time."""

    def __init__(self, models: ModelRegistry) -> None:
        self.models = models

    def collect(self) -> Iterator[Metric]:
        label = LABELS
        running = GaugeMetricFamily("enclave_num_requests_running", "Sequences in a slot (prefill or generating).", labels=label)
        waiting = GaugeMetricFamily("enclave_num_requests_waiting", "Requests queued for a slot.", labels=label)
        slots = GaugeMetricFamily("enclave_slots_total", "Sequence slots (each with its own n_ctx KV cells).", labels=label)
        usage = GaugeMetricFamily("enclave_kv_cache_usage_perc", "Fraction of sequence slots in use (0 to 1).", labels=label)
        kept = GaugeMetricFamily("enclave_state_cache_bytes", "RAM holding KV states of sequences that lost their slot.", labels=label)
        for v in self.models.views():
            if v.stats is None:
                continue
            name = labels(v.file.name)
            running.add_metric(name, v.stats.active)
            waiting.add_metric(name, v.stats.queued)
            slots.add_metric(name, v.sequence_slots)
            usage.add_metric(name, v.stats.active / v.sequence_slots if v.sequence_slots else 0.0)
            kept.add_metric(name, v.stats.state_cache_bytes)
        for r in self.models.remote.views():  # what a remote engine runs for enclaved now
            running.add_metric(labels(r.name), r.in_flight)
        yield from (running, waiting, slots, usage, kept)
