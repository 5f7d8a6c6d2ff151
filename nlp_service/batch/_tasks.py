"""What a batch job does to each text, found by name: ``embed``, ``classify``, ``translate``, ``generate``.

Every task goes through the service's own capabilities (:class:`~nlp_service.serving.Service`): the
same limits, the same micro-batchers (length-sorted batches, the GPU when there is one), the same
generation engine, so a batch job gives what the HTTP endpoint gives for the same model and parameters.
The job sends texts of similar length together, as one request of up to ``group_size`` texts; a request
that fails is split until the bad text is alone, so one bad text gets its own error (the endpoint's, for that
text) and the others go on. A new task implements :class:`BatchTask` and plugs in with :func:`register_task`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from ..generate import SamplingParams
from ..options import option
from ..translate import DecodeOptions

if TYPE_CHECKING:
    from ..config import Settings
    from ..registry import Model
    from ..serving import Service


class BatchTask(Protocol):
    """One kind of batch job."""

    name: str  # the command: ``nlp-service batch <name>``
    help: str
    options: type | None  # its option dataclass (decoding, sampling), None when it has none
    micro_batched: bool  # its model runs in the service's micro-batcher (whose workers the job sets)

    def model(self, service: Service, name: str | None) -> Model:
        """The model the job uses: the named one, else the default of its kind."""
        ...

    def default_model(self, settings: Settings) -> str | None:
        ...

    def fields(self, model: Model) -> list[Any]:
        """Its result columns (pyarrow fields)."""
        ...

    def in_flight(self, settings: Settings) -> int:
        """How many texts to keep submitted at once: enough to fill the batches, bounded by the queues."""
        ...

    def group_size(self, settings: Settings) -> int:
        """Most texts in one request (:meth:`run`)."""
        ...

    async def run(self, service: Service, model: Model, texts: list[str], options: Any) -> list[dict[str, Any]]:
        """The result columns of each text, as one request; a domain error (``NLPServiceError``) is the
        request's (the job finds whose text it is)."""
        ...


@dataclass(kw_only=True)
class EmbedOptions:
    normalize: bool = option(False, "Unit-length vectors (as /v1/embeddings/texts with normalize).")


class _ServiceTask:
    """A task on one of the service's capabilities (``service.<capability>.model(name)``), whose default
    model is the setting ``default_setting``; its model is micro-batched unless it says otherwise."""

    capability: ClassVar[str]
    default_setting: ClassVar[str]

    def default_model(self, settings: Settings) -> str | None:
        return getattr(settings, self.default_setting)  # type: ignore[no-any-return]

    def model(self, service: Service, name: str | None) -> Model:
        return getattr(service, self.capability).model(name)  # type: ignore[no-any-return]

    def in_flight(self, settings: Settings) -> int:
        """A few batches' worth of texts."""
        return 4 * settings.batch_max_size

    def group_size(self, settings: Settings) -> int:
        """A micro-batch: the model's batches are the job's requests."""
        return min(settings.batch_max_size, settings.max_texts)


class EmbedTask(_ServiceTask):
    name = "embed"
    help = ("Vectors of texts with a vectors model: the mean of the token vectors, as /v1/embeddings/texts "
            "(embedding, token and out-of-vocabulary counts; no known token: a null embedding).")
    options: ClassVar[type | None] = EmbedOptions
    micro_batched = False
    capability = "vectors"
    default_setting = "default_vectors_model"

    def fields(self, model: Model) -> list[Any]:
        import pyarrow as pa

        dim = model.store.dim  # type: ignore[attr-defined]
        return [pa.field("embedding", pa.list_(pa.float32(), dim)), pa.field("tokens", pa.int32()),
                pa.field("oov", pa.int32())]

    async def run(self, service: Service, model: Model, texts: list[str], options: EmbedOptions
                  ) -> list[dict[str, Any]]:
        vectors = service.vectors.text_vectors(model, texts, normalized=options.normalize)  # type: ignore[arg-type]
        return [{"embedding": vector, "tokens": len(tokens), "oov": len(oov)} for vector, tokens, oov in vectors]


class ClassifyTask(_ServiceTask):
    name = "classify"
    help = ("Label and class probabilities of each text with a classifier, as /v1/classify (a sentiment model "
            "as /v1/sentiment: --model sentiment-es).")
    options: ClassVar[type | None] = None
    micro_batched = True
    capability = "classification"
    default_setting = "default_classifier_model"

    def fields(self, model: Model) -> list[Any]:
        import pyarrow as pa

        classes = model.classes  # type: ignore[attr-defined]
        return [pa.field("label", pa.string()),
                pa.field("probabilities", pa.struct([pa.field(c, pa.float64()) for c in classes]))]

    async def run(self, service: Service, model: Model, texts: list[str], options: None) -> list[dict[str, Any]]:
        predictions = await service.classification.classify(model, texts)  # type: ignore[arg-type]
        return [{"label": p.label, "probabilities": p.probabilities} for p in predictions]


class TranslateTask(_ServiceTask):
    name = "translate"
    help = "Translate each text with a translator, as /v1/translate (beam search; --beam-size 1: greedy)."
    options: ClassVar[type | None] = DecodeOptions
    micro_batched = True
    capability = "translation"
    default_setting = "default_translator_model"

    def fields(self, model: Model) -> list[Any]:
        import pyarrow as pa

        return [pa.field("translation", pa.string())]

    async def run(self, service: Service, model: Model, texts: list[str], options: DecodeOptions
                  ) -> list[dict[str, Any]]:
        translations = await service.translation.translate(model, texts, options)  # type: ignore[arg-type]
        return [{"translation": t} for t in translations]


class GenerateTask(_ServiceTask):
    name = "generate"
    help = ("Continue each text with a generator, as /v1/generate (greedy unless --sample; --seed makes sampling "
            "repeatable): the generated text and why it ended (length, eos, stop).")
    options: ClassVar[type | None] = SamplingParams
    micro_batched = False  # the generation engine batches by itself
    capability = "generation"
    default_setting = "default_generator_model"

    def in_flight(self, settings: Settings) -> int:
        # Every engine slot busy, and as many waiting to take a slot as soon as one frees.
        return 2 * settings.generation_max_batch

    def group_size(self, settings: Settings) -> int:
        # One prompt a request, as /v1/generate: the engine batches across requests by itself.
        return 1

    def fields(self, model: Model) -> list[Any]:
        import pyarrow as pa

        return [pa.field("generated_text", pa.string()), pa.field("finish_reason", pa.string())]

    async def run(self, service: Service, model: Model, texts: list[str], options: SamplingParams
                  ) -> list[dict[str, Any]]:
        [prompt] = texts
        generation = await service.generation.start(model, prompt, options)  # type: ignore[arg-type]
        pieces, reason = [], None
        async for piece in generation.pieces():
            pieces.append(piece.text)
            reason = piece.finish_reason or reason
        return [{"generated_text": "".join(pieces), "finish_reason": reason}]


_TASKS: dict[str, BatchTask] = {t.name: t for t in (EmbedTask(), ClassifyTask(), TranslateTask(), GenerateTask())}


def register_task(task: BatchTask) -> None:
    """Make ``nlp-service batch <task.name>`` (and :func:`get_task`) find ``task``."""
    _TASKS[task.name] = task


def get_task(name: str) -> BatchTask:
    if name not in _TASKS:
        raise KeyError(f"unknown batch task {name!r}; known: {', '.join(_TASKS)}")
    return _TASKS[name]


def task_names() -> list[str]:
    return list(_TASKS)
