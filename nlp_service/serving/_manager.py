"""The models the service holds, loaded once at start-up and shared by every request, with the workers
that serve them: a micro-batcher per model that predicts in batches (made on first use), and a
generation worker per generator (started when the model loads, closed with the manager)."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..artifacts import list_models
from ..errors import ModelNotFound, Unavailable
from ..generate import GeneratorModel
from ..registry import BatchPredictor, Model, get_kind
from ._batching import MicroBatcher
from ._generation import GenerationWorker

if TYPE_CHECKING:
    from ..config import Settings

log = logging.getLogger("nlp_service.serving")


class ModelManager:
    """Loads the configured models; a model that fails to load is reported, never fatal."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.models: dict[str, Model] = {}
        self.failed: dict[str, str] = {}
        self.ready = False
        self.load_seconds: float | None = None
        self.started = time.time()
        self._batchers: dict[str, MicroBatcher[Any, Any]] = {}
        self._generation: dict[str, GenerationWorker] = {}

    def load_all(self) -> None:
        start = time.perf_counter()
        wanted = self.settings.models
        found = {path.name: (path, manifest) for path, manifest in list_models(self.settings.models_dir)}
        names = wanted if wanted is not None else sorted(found)
        for name in names:
            if name not in found:
                self.failed[name] = f"no model folder {name!r} in {Path(self.settings.models_dir).resolve()}"
                log.error("model %s: %s", name, self.failed[name])
                continue
            path, manifest = found[name]
            try:
                model = get_kind(manifest.kind).load(path, manifest, self.settings)
                if isinstance(model, GeneratorModel):  # its engine (KV cache, CUDA graphs) is built now
                    self._generation[name] = GenerationWorker.for_model(model, self.settings)
                self.models[name] = model
                log.info("loaded %s model %s", manifest.kind, name)
            except Exception as exc:  # a broken folder must not take the service down
                self.failed[name] = f"{exc.__class__.__name__}: {exc}"
                log.error("model %s failed to load: %s", name, self.failed[name])
        self.load_seconds = round(time.perf_counter() - start, 3)
        self.ready = True
        threading.Thread(target=self._warm_up, name="model-warm-up", daemon=True).start()

    def _warm_up(self) -> None:
        """Pay one-off costs (tokenizer import, ANN index load) off the request path."""
        for name, model in list(self.models.items()):
            try:
                model.warm_up(self.settings)
            except Exception as exc:
                log.error("warm-up of %s failed: %s", name, exc)

    def of_kind(self, kind: str) -> dict[str, Model]:
        return {n: m for n, m in self.models.items() if m.kind == kind}

    def get(self, kind: str, name: str | None, default: str | None = None) -> Any:
        """The named model of ``kind``; without a name the ``default`` one, else the first loaded."""
        candidates = self.of_kind(kind)
        if name is None:
            if default and default in candidates:
                return candidates[default]
            if not candidates:
                raise Unavailable(f"no {kind} model is loaded", failed=self.failed)
            return next(iter(candidates.values()))
        model = candidates.get(name)
        if model is None:
            raise ModelNotFound(f"no {kind} model named {name!r}", model=name, available=sorted(candidates),
                                **self._load_error(name))
        return model

    def _load_error(self, name: str) -> dict[str, str]:
        return {"load_error": self.failed[name]} if name in self.failed else {}

    def batcher(self, name: str) -> MicroBatcher[Any, Any]:
        """The micro-batching worker of a model that predicts in batches (made on first use)."""
        if name not in self._batchers:
            model = self.models[name]
            if not isinstance(model, BatchPredictor):
                raise TypeError(f"model {name!r} ({model.kind}) does not predict in batches")
            self._batchers[name] = MicroBatcher(model.predict, max_batch_size=self.settings.batch_max_size,
                                                max_wait_ms=self.settings.batch_max_wait_ms, name=f"batch-{name}")
        return self._batchers[name]

    def generation_worker(self, name: str) -> GenerationWorker:
        return self._generation[name]

    async def close(self) -> None:
        for batcher in self._batchers.values():
            await batcher.close()
        self._batchers.clear()
        for worker in self._generation.values():
            worker.close()
        for model in self.models.values():
            model.close()

    def describe(self) -> dict[str, Any]:
        created = int(self.started)
        return {
            # OpenAI's list shape too, so its clients can list the models.
            "object": "list",
            "data": [{"id": n, "object": "model", "created": created, "owned_by": "nlp-service", "kind": m.kind}
                     for n, m in self.models.items()],
            "models": [self.describe_model(n) for n in self.models],
            "failed": [{"name": n, "error": e} for n, e in self.failed.items()],
        }

    def describe_model(self, name: str) -> dict[str, Any]:
        if name not in self.models:
            raise ModelNotFound(f"no model named {name!r}", available=sorted(self.models),
                                load_error=self.failed.get(name))
        out = self.models[name].describe()
        if name in self._batchers:
            out["batching"] = self._batchers[name].stats.as_dict()
        if name in self._generation:
            out.update(self._generation[name].describe())
        return out
