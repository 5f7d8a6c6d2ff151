"""The models the service holds, loaded once at start-up and shared by every request, with the workers
that serve them: a micro-batcher per model that predicts in batches (made on first use), and a
generation worker per generator (started when the model loads, closed with the manager).

Models load in a background thread (:meth:`ModelManager.start`), so a server opens its port at once and
``/ready`` can say "loading"; :meth:`ModelManager.load_all` is the same work for callers that wait."""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..artifacts import Manifest, remove_interrupted_saves, scan_models, verify_files
from ..errors import ModelNotFound, Unavailable
from ..generate import GeneratorModel
from ..registry import BatchPredictor, Model, get_kind
from ._batching import MicroBatcher
from ._generation import GenerationWorker
from ._metrics import MODEL_LOAD_FAILURES, MODELS_LOADED

if TYPE_CHECKING:
    from ..config import Settings

log = logging.getLogger("nlp_service.serving")

# An absolute path not preceded by a word, a path or a URL scheme; group 1: its last component.
_ABS_PATH = re.compile(r"(?<![\w./:~-])/(?:[^\s/'\"()\[\]{},;]+/)*([^\s/'\"()\[\]{},;]*)"
                       r"|\b[A-Za-z]:\\(?:[^\s\\'\"]+\\)*([^\s\\'\"]*)")
_MAX_REASON = 500


def public_reason(text: str, models_dir: Path) -> str:
    """Why a model failed, fit for API clients: no filesystem paths (a model folder is named by its own
    name, any other path by its last component), one line, bounded. The log keeps the full text."""
    for root in {os.path.abspath(models_dir), str(Path(models_dir).resolve())}:
        text = text.replace(root.rstrip(os.sep) + os.sep, "")
    text = _ABS_PATH.sub(lambda m: m.group(1) or m.group(2) or "", text)
    text = " ".join(text.split())
    return text if len(text) <= _MAX_REASON else text[:_MAX_REASON - 1] + "…"


class ModelManager:
    """Loads the configured models; a model that fails to load is reported, never fatal, never served.

    The loader thread publishes each model by replacing the dicts (never changing one a request may be
    iterating) and sets ``ready`` last, so request threads read without a lock. ``failed`` holds
    public reasons (no paths); the log has the full error.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.models: dict[str, Model] = {}
        self.failed: dict[str, str] = {}
        self.ready = False  # every configured model has been tried
        self.load_seconds: float | None = None
        self.started = time.time()
        self._batchers: dict[str, MicroBatcher[Any, Any]] = {}
        self._generation: dict[str, GenerationWorker] = {}
        self._pending: frozenset[str] | None = None  # names still to try; None: the folder is not read yet
        self._done = threading.Event()
        self._lock = threading.Lock()  # publishing a model vs closing the manager
        self._closing = False
        self._loader: threading.Thread | None = None

    # ---- loading -------------------------------------------------------------------------------

    def start(self) -> None:
        """Clean up after interrupted saves, then load the models in a background thread."""
        if self._loader is None:
            self._loader = threading.Thread(target=self._start_in_background, name="model-loader", daemon=True)
            self._loader.start()

    def _start_in_background(self) -> None:
        try:
            for name in remove_interrupted_saves(self.settings.models_dir):
                log.warning("removed %s from the models folder: the temporary folder of a save that did not "
                            "finish (its process was killed)", name)
            self.load_all()
        except Exception:  # load_all marks the manager ready whatever happens; this only reports
            log.exception("loading the models failed")
        finally:
            self._done.set()

    def wait_until_ready(self, timeout: float | None = None) -> bool:
        """Block until every configured model has been tried (loaded or failed); False on timeout."""
        if self.ready:
            return True
        self._done.wait(timeout)
        return self.ready

    def load_all(self) -> None:
        """Load every configured model now; ``ready`` once each has been tried."""
        start = time.perf_counter()
        try:
            found, problems = scan_models(self.settings.models_dir)
            folders = {path.name: (path, manifest) for path, manifest in found}
            wanted = self.settings.models
            names = list(wanted) if wanted is not None else sorted({*folders, *problems})
            self._pending = frozenset(names)
            for name in names:
                if self._closing:
                    break
                if name in folders:
                    self._load_one(name, *folders[name])
                else:
                    self._fail(name, problems.get(name) or
                               f"no model folder {name!r} in {Path(self.settings.models_dir).resolve()}")
        finally:
            self.load_seconds = round(time.perf_counter() - start, 3)
            MODELS_LOADED.set(len(self.models))
            MODEL_LOAD_FAILURES.set(len(self.failed))
            self.ready = True
            self._done.set()
        if not self._closing:
            threading.Thread(target=self._warm_up, name="model-warm-up", daemon=True).start()

    def _load_one(self, name: str, path: Path, manifest: Manifest) -> None:
        try:
            # Sizes always; the sha256 of every file unless NLP_VERIFY_CHECKSUMS=false: damaged weights
            # load without an error and answer garbage.
            verify_files(path, manifest, checksums=self.settings.verify_checksums)
            model = get_kind(manifest.kind).load(path, manifest, self.settings)
        except Exception as exc:  # a broken folder must not take the service down
            self._fail(name, f"{exc.__class__.__name__}: {exc}")
            return
        try:
            worker = (GenerationWorker.for_model(model, self.settings)  # its engine (KV cache, CUDA graphs)
                      if isinstance(model, GeneratorModel) else None)
        except Exception as exc:
            model.close()
            self._fail(name, f"{exc.__class__.__name__}: {exc}")
            return
        if not self._publish(name, model, worker):  # the manager closed meanwhile
            if worker is not None:
                worker.close()
            model.close()
            return
        log.info("loaded %s model %s", manifest.kind, name)

    def _publish(self, name: str, model: Model, worker: GenerationWorker | None) -> bool:
        with self._lock:
            if self._closing:
                return False
            if worker is not None:
                self._generation = {**self._generation, name: worker}
            self.models = {**self.models, name: model}
            self._tried(name)
            return True

    def _fail(self, name: str, error: str) -> None:
        log.error("model %s failed to load: %s", name, error)
        with self._lock:
            self.failed = {**self.failed, name: public_reason(error, self.settings.models_dir)}
            self._tried(name)

    def _tried(self, name: str) -> None:
        # After ``models``/``failed``: a reader that sees a name leave ``_pending`` finds it there.
        if self._pending is not None:
            self._pending = self._pending - {name}

    def _warm_up(self) -> None:
        """Pay one-off costs (tokenizer import, ANN index load) off the request path."""
        for name, model in list(self.models.items()):
            try:
                model.warm_up(self.settings)
            except Exception as exc:
                log.error("warm-up of %s failed: %s", name, exc)

    # ---- lookups -------------------------------------------------------------------------------

    def loading(self, name: str | None = None) -> bool:
        """Whether the models (or the model ``name``) may still come: loading has not finished."""
        if self.ready:
            return False
        pending = self._pending
        return name is None or pending is None or name in pending

    def _still_loading(self, name: str | None = None) -> Unavailable:
        what = f"model {name!r} is not loaded yet" if name else "not every model is loaded yet"
        return Unavailable(f"the service is still loading its models: {what}; retry in a moment "
                           "(GET /ready answers 200 once loading is done)", code="loading",
                           **({"model": name} if name else {}))

    def of_kind(self, kind: str) -> dict[str, Model]:
        """The loaded models of ``kind``; while loading, a 503 (the set is not complete yet)."""
        if self.loading():
            raise self._still_loading()
        return self._loaded(kind)

    def _loaded(self, kind: str) -> dict[str, Model]:
        return {n: m for n, m in self.models.items() if m.kind == kind}

    def get(self, kind: str, name: str | None, default: str | None = None) -> Any:
        """The named model of ``kind``; without a name the ``default`` one (a setting), never another: a
        request that names no model gets the model the operator chose, or a 503 that says so."""
        wanted = name if name is not None else default
        model = self.models.get(wanted) if wanted is not None else None
        if model is None and wanted is not None and self.loading(wanted):
            raise self._still_loading(wanted)
        model = model or self.models.get(wanted)  # type: ignore[arg-type]  # published meanwhile
        if model is not None and model.kind == kind:
            return model
        if name is None:
            raise self._default_missing(kind, default)
        raise ModelNotFound(f"no {kind} model named {name!r}", model=name, available=sorted(self._loaded(kind)),
                            **self._load_error(name))

    def _default_missing(self, kind: str, default: str | None) -> Unavailable:
        loaded = sorted(self._loaded(kind))
        names = f"one of {', '.join(loaded)}" if loaded else f"none: no {kind} model is loaded"
        if default is None:
            return Unavailable(f"no default {kind} model: name one in the request ({names})", available=loaded)
        settings = [f"NLP_{field.upper()}" for field in type(self.settings).model_fields
                    if field.startswith("default_") and field.endswith("_model")
                    and getattr(self.settings, field) == default]
        setting = " or ".join(settings) or "its setting"
        why = "failed to load" if default in self.failed else "is not loaded"
        return Unavailable(f"the default {kind} model {default!r} (set by {setting}) {why}; name a model in the "
                           f"request ({names}) or set {setting}", code="default_model_unavailable",
                           model=default, setting=setting, available=loaded, **self._load_error(default))

    def _load_error(self, name: str) -> dict[str, str]:
        return {"load_error": self.failed[name]} if name in self.failed else {}

    def batcher(self, name: str) -> MicroBatcher[Any, Any]:
        """The micro-batching worker of a model that predicts in batches (made on first use)."""
        if name not in self._batchers:
            model = self.models[name]
            if not isinstance(model, BatchPredictor):
                raise TypeError(f"model {name!r} ({model.kind}) does not predict in batches")
            self._batchers[name] = MicroBatcher(model.predict, max_batch_size=self.settings.batch_max_size,
                                                max_wait_ms=self.settings.batch_max_wait_ms,
                                                max_queue=self.settings.batch_max_queue, name=name)
        return self._batchers[name]

    def generation_worker(self, name: str) -> GenerationWorker:
        return self._generation[name]

    async def close(self) -> None:
        with self._lock:  # from now on the loader closes what it loads instead of publishing it
            self._closing = True
        for batcher in self._batchers.values():
            await batcher.close()
        self._batchers.clear()
        for worker in self._generation.values():
            worker.close()
        for model in self.models.values():
            model.close()

    def describe(self) -> dict[str, Any]:
        """The loaded models (so far, while loading) and those that failed, with their reasons."""
        created = int(self.started)
        models = self.models  # one snapshot: the loader may publish meanwhile
        return {
            # OpenAI's list shape too, so its clients can list the models.
            "object": "list",
            "data": [{"id": n, "object": "model", "created": created, "owned_by": "nlp-service", "kind": m.kind}
                     for n, m in models.items()],
            "models": [self._describe(n, m) for n, m in models.items()],
            "failed": self.failures(),
        }

    def failures(self) -> list[dict[str, str]]:
        """The models that failed to load, by name, with a reason fit for clients (no paths)."""
        return [{"name": n, "error": e} for n, e in sorted(self.failed.items())]

    def describe_model(self, name: str) -> dict[str, Any]:
        model = self.models.get(name)
        if model is None and self.loading(name):
            raise self._still_loading(name)
        model = model or self.models.get(name)
        if model is None:
            raise ModelNotFound(f"no model named {name!r}", available=sorted(self.models),
                                load_error=self.failed.get(name))
        return self._describe(name, model)

    def _describe(self, name: str, model: Model) -> dict[str, Any]:
        out = model.describe()
        if name in self._batchers:
            out["batching"] = self._batchers[name].stats.as_dict()
        if name in self._generation:
            out.update(self._generation[name].describe())
        return out
