"""The models the service holds: loaded once at start-up, shared by every request."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from ..artifacts import list_models
from ..batching import MicroBatcher
from ..config import Settings
from ..registry import LoadedModel, get_loader

log = logging.getLogger("nlp_service.api")


class ModelManager:
    """Loads the configured models; a model that fails to load is reported, never fatal."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.models: dict[str, LoadedModel] = {}
        self.failed: dict[str, str] = {}
        self.ready = False
        self.load_seconds: float | None = None
        self.started = time.time()
        self._batchers: dict[str, MicroBatcher[Any, Any]] = {}

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
                self.models[name] = get_loader(manifest.kind)(path, manifest, self.settings)
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
            warm_up = getattr(model, "warm_up", None)
            if warm_up is None:
                continue
            try:
                warm_up(self.settings)
            except Exception as exc:
                log.error("warm-up of %s failed: %s", name, exc)

    def batcher(self, name: str) -> MicroBatcher[Any, Any]:
        """The micro-batching worker of a model with ``predict(items)`` (made on first use)."""
        if name not in self._batchers:
            model = self.models[name]
            self._batchers[name] = MicroBatcher(
                model.predict,  # type: ignore[attr-defined]
                max_batch_size=self.settings.batch_max_size, max_wait_ms=self.settings.batch_max_wait_ms,
                name=f"batch-{name}",
            )
        return self._batchers[name]

    async def close(self) -> None:
        for batcher in self._batchers.values():
            await batcher.close()
        self._batchers.clear()
        for model in self.models.values():
            close = getattr(model, "close", None)
            if close is not None:
                close()

    def of_kind(self, kind: str) -> dict[str, LoadedModel]:
        return {n: m for n, m in self.models.items() if m.kind == kind}

    def describe(self) -> dict[str, Any]:
        created = int(self.started)
        return {
            # OpenAI's list shape too, so its clients can list the models.
            "object": "list",
            "data": [{"id": n, "object": "model", "created": created, "owned_by": "nlp-service", "kind": m.kind}
                     for n, m in self.models.items()],
            "models": [m.describe() | ({"batching": self._batchers[n].stats.as_dict()} if n in self._batchers else {})
                       for n, m in self.models.items()],
            "failed": [{"name": n, "error": e} for n, e in self.failed.items()],
        }
