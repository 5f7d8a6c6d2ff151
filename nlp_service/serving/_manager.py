"""The models the service holds, loaded once at start-up and shared by every request, with the workers
that serve them: a micro-batcher per model that predicts in batches (made on first use), and a
generation worker per generator (started when the model loads, closed with the manager).

Models load in a background thread (:meth:`ModelManager.start`), so a server opens its port at once and
``/ready`` can say "loading"; :meth:`ModelManager.load_all` is the same work for callers that wait. Models
can also come later, without a restart: :meth:`ModelManager.add` loads a folder saved meanwhile, and
:meth:`ModelManager.build_in_background` takes builds (the default models a first start makes) whose models
answer 503 ``model_building`` with their progress until they are built, then load."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..artifacts import Manifest, read_manifest, remove_interrupted_saves, scan_models, verify_files
from ..errors import ModelBuilding, ModelNotFound, NotFound, Unavailable
from ..generate import GeneratorModel
from ..registry import BatchPredictor, Model, get_kind
from ..training import TRAINING_CURVE
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


class ModelBuilds(Protocol):
    """Models being made while the service runs (``nlp_service.defaults.BackgroundBuilds``: this layer
    does not import it), as the manager sees them."""

    def planned(self) -> dict[str, str]:
        """The models it makes, in order, with their kinds."""
        ...

    def status(self, name: str) -> dict[str, Any] | None:
        """How far the build of ``name`` has got (``state``, ``progress``, ...); None once it has ended."""
        ...

    def start(self, built: Callable[[str], object], failed: Callable[[str, str], object]) -> None:
        """Start building in the background; report each model built (its folder saved) or failed."""
        ...

    def stop(self) -> None:
        """End the build under way and build no more."""
        ...


class ModelManager:
    """Loads the configured models; a model that fails to load is reported, never fatal, never served.

    The loader thread publishes each model by replacing the dicts (never changing one a request may be
    iterating) and sets ``ready`` last, so request threads read without a lock. ``failed`` holds
    public reasons (no paths); the log has the full error. ``building`` (name: kind) holds the models that
    background builds will add; a model leaves it after it is published (or failed).
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
        self._load_lock = threading.Lock()  # one load of a model at a time: the loader thread vs add()
        self._builds: ModelBuilds | None = None
        self.building: dict[str, str] = {}  # name: kind of the models being built

    # ---- loading -------------------------------------------------------------------------------

    def build_in_background(self, builds: ModelBuilds) -> None:
        """Serve the models ``builds`` makes as they come (before :meth:`start`, which starts them): until
        then a request for one answers 503 ``model_building`` with its progress."""
        if self._loader is not None:
            raise RuntimeError("build_in_background() comes before start()")
        self._builds = builds
        self.building = dict(builds.planned())

    def start(self) -> None:
        """Clean up after interrupted saves, start the background builds if any, then load the models, in
        a background thread."""
        if self._loader is None:
            self._loader = threading.Thread(target=self._start_in_background, name="model-loader", daemon=True)
            self._loader.start()

    def _start_in_background(self) -> None:
        try:
            for name in remove_interrupted_saves(self.settings.models_dir):
                log.warning("removed %s from the models folder: the temporary folder of a save that did not "
                            "finish (its process was killed)", name)
            if self._builds is not None and not self._closing:  # after the clean-up: it removes their saves
                self._builds.start(self._built, self._build_failed)
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
        if self.settings.torch_threads is not None:
            import torch  # process-wide: before any model runs

            torch.set_num_threads(self.settings.torch_threads)
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
                    with self._load_lock:
                        if name not in self.models:  # add() may have loaded it (built meanwhile)
                            self._load_one(name, *folders[name])
                elif name in self.building:  # not there yet: it comes when built
                    self._tried(name)
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

    def _warm_up(self, names: list[str] | None = None) -> None:
        """Pay one-off costs (tokenizer import, ANN index load) off the request path."""
        for name, model in list(self.models.items()):
            if names is not None and name not in names:
                continue
            try:
                model.warm_up(self.settings)
            except Exception as exc:
                log.error("warm-up of %s failed: %s", name, exc)

    # ---- models that come later ----------------------------------------------------------------

    def add(self, name: str) -> bool:
        """Load the model folder ``name`` into the running service (one saved after start-up: a background
        build's, or copied in), thread-safe; True when it serves, False when it failed to load (then listed
        under ``failed``). A model already loaded stays as it is."""
        with self._load_lock:
            if name not in self.models:
                path = Path(self.settings.models_dir) / name
                try:
                    manifest = read_manifest(path)
                except Exception as exc:
                    self._fail(name, f"{exc.__class__.__name__}: {exc}")
                else:
                    self._load_one(name, path, manifest)
            loaded = name in self.models
            with self._lock:
                if loaded:
                    self.failed = {n: e for n, e in self.failed.items() if n != name}
                self.building = {n: k for n, k in self.building.items() if n != name}  # after publishing
            MODELS_LOADED.set(len(self.models))
            MODEL_LOAD_FAILURES.set(len(self.failed))
        if loaded and not self._closing:
            threading.Thread(target=self._warm_up, args=([name],), name="model-warm-up", daemon=True).start()
        return loaded

    def _built(self, name: str) -> None:
        if not self._closing:
            self.add(name)

    def _build_failed(self, name: str, reason: str) -> None:
        if self._closing:
            return
        self._fail(name, f"building it failed: {reason}")
        with self._lock:
            self.building = {n: k for n, k in self.building.items() if n != name}
        MODEL_LOAD_FAILURES.set(len(self.failed))

    def builds(self) -> list[dict[str, Any]]:
        """The models being built, in build order, each with how far it has got."""
        return [{"name": n, "kind": k, **self._build_status(n)} for n, k in self.building.items()]

    def _build_status(self, name: str) -> dict[str, Any]:
        status = self._builds.status(name) if self._builds is not None else None
        return status or {"state": "building"}  # ended a moment ago: the manager publishes it now

    def _building(self, name: str) -> ModelBuilding:
        status = self._build_status(name)
        if status.get("state") == "waiting":
            when = f"waits for {', '.join(status.get('after') or ['another build'])}"
        else:
            when = f"{round(100 * status['progress'])}% done" if status.get("progress") is not None else "under way"
        left = status.get("remaining_seconds")
        eta = f", about {left} s left" if left is not None else ""
        return ModelBuilding(f"model {name!r} is being built (a default model missing from the models folder): "
                             f"its build {when}{eta}; retry later (GET /ready lists the builds). The service "
                             "loads it without a restart.", model=name, **status)

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
        """The loaded models of ``kind``; while loading, or while one of that kind is built, a 503 (the set is
        not complete yet)."""
        if self.loading():
            raise self._still_loading()
        building = [n for n, k in self.building.items() if k == kind]
        if building:
            raise self._building(building[0])
        return self._loaded(kind)

    def _loaded(self, kind: str) -> dict[str, Model]:
        return {n: m for n, m in self.models.items() if m.kind == kind}

    def get(self, kind: str, name: str | None, default: str | None = None) -> Any:
        """The named model of ``kind``; without a name the ``default`` one (a setting), never another: a
        request that names no model gets the model the operator chose, or a 503 that says so."""
        wanted = name if name is not None else default
        model = self.models.get(wanted) if wanted is not None else None
        if model is None and wanted is not None:
            if wanted in self.building:
                raise self._building(wanted)
            if self.loading(wanted):
                raise self._still_loading(wanted)
            model = self.models.get(wanted)  # published meanwhile (before it left ``building``)
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
                                                max_queue=self.settings.batch_max_queue, name=name,
                                                workers=self.settings.batch_workers)
        return self._batchers[name]

    def generation_worker(self, name: str) -> GenerationWorker:
        return self._generation[name]

    async def close(self) -> None:
        with self._lock:  # from now on the loader closes what it loads instead of publishing it
            self._closing = True
        if self._builds is not None:
            await asyncio.to_thread(self._builds.stop)  # ends a build process (waits for it to exit)
        for batcher in self._batchers.values():
            await batcher.close()
        self._batchers.clear()
        for worker in self._generation.values():
            worker.close()
        for model in self.models.values():
            model.close()

    def describe(self) -> dict[str, Any]:
        """The loaded models (so far, while loading), those being built (while any is) and those that
        failed, with their reasons."""
        created = int(self.started)
        models = self.models  # one snapshot: the loader may publish meanwhile
        building = {"building": self.builds()} if self.building else {}
        return {
            # OpenAI's list shape too, so its clients can list the models.
            "object": "list",
            "data": [{"id": n, "object": "model", "created": created, "owned_by": "nlp-service", "kind": m.kind}
                     for n, m in models.items()],
            "models": [self._describe(n, m) for n, m in models.items()],
            "failed": self.failures(),
            **building,
        }

    def failures(self) -> list[dict[str, str]]:
        """The models that failed to load, by name, with a reason fit for clients (no paths)."""
        return [{"name": n, "error": e} for n, e in sorted(self.failed.items())]

    def describe_model(self, name: str) -> dict[str, Any]:
        return self._describe(name, self._named(name))

    def training_curve(self, name: str) -> bytes:
        """The PNG of a loaded model's training curves (its folder's ``training_curve.png``); :class:`NotFound`
        (``no_training_curve``) for a model trained without one (baselines, vectors, imported models). Only a
        loaded model's name reaches the filesystem: no path comes from the request."""
        self._named(name)
        path = Path(self.settings.models_dir) / name / TRAINING_CURVE
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise NotFound(f"model {name!r} has no training curve (only models trained here with a per-epoch "
                           "history have one: rnn, translator, gpt2)", code="no_training_curve",
                           model=name) from None

    def _named(self, name: str) -> Model:
        """The loaded model ``name``, else why not (building, still loading, not found)."""
        model = self.models.get(name)
        if model is None and name in self.building:
            raise self._building(name)
        if model is None and self.loading(name):
            raise self._still_loading(name)
        model = model or self.models.get(name)
        if model is None:
            raise ModelNotFound(f"no model named {name!r}", available=sorted(self.models),
                                load_error=self.failed.get(name))
        return model

    def _describe(self, name: str, model: Model) -> dict[str, Any]:
        out = model.describe()
        if name in self._batchers:
            out["batching"] = self._batchers[name].stats.as_dict()
        if name in self._generation:
            out.update(self._generation[name].describe())
        return out
