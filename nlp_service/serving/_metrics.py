"""What the serving layer measures, as Prometheus metrics (``prometheus_client``'s default registry).

The workers update them where things happen (a batch runs, a token is made); the HTTP layer only
exposes the registry at ``/metrics`` and adds its own request metrics. Labels are model names, which
are few and fixed at start-up.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256)

QUEUE_DEPTH = Gauge("nlp_queue_depth", "Items (texts) waiting for a micro-batch, per model.", ["model"])
BATCH_SIZE = Histogram("nlp_batch_size", "Items (texts) per micro-batch forward pass.", ["model"], buckets=_SIZES)
BATCH_SECONDS = Histogram("nlp_batch_seconds", "Time of one micro-batch forward pass.", ["model"])
REJECTED = Counter("nlp_rejected_total", "Requests refused because a queue was full (429).", ["model"])
GENERATIONS_RUNNING = Gauge("nlp_generations_running", "Generations holding an engine slot.", ["model"])
GENERATIONS_WAITING = Gauge("nlp_generations_waiting", "Generations admitted and waiting for a slot.", ["model"])
TOKENS_GENERATED = Counter("nlp_generated_tokens_total", "Tokens generated.", ["model"])
TIME_TO_FIRST_TOKEN = Histogram(
    "nlp_time_to_first_token_seconds", "From a generation's admission to its first token.", ["model"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0))
GENERATION_ERRORS = Counter("nlp_generation_errors_total", "Generations ended by an engine failure.", ["model"])
MODELS_LOADED = Gauge("nlp_models_loaded", "Models loaded and serving.")
MODEL_LOAD_FAILURES = Gauge("nlp_model_load_failures", "Configured models that failed to load (see /ready).")
