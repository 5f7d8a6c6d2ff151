"""``nlp_service.load``: a saved model, ready to use from Python (a notebook, a script) without the server."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .artifacts import list_models, read_manifest, verify_files
from .config import Device, Settings
from .errors import ModelNotFound
from .registry import load_model


def load(model: str | os.PathLike[str], *, device: Device | None = None, settings: Settings | None = None) -> Any:
    """Open a saved model: a model folder (``"models/w2v-es"``), or a model name under the models folder
    (``"w2v-es"``: ``NLP_MODELS_DIR``, ``./models`` unless set; a name found there wins over a folder of that
    name in the working directory, as on the command line).

    Returns the model object of its kind, the one the service serves: :class:`~nlp_service.vectors.VectorsModel`
    (``most_similar``, ``similarity``, ``analogy``, ``encode``, ``to_keyed_vectors``),
    :class:`~nlp_service.classify.ClassifierModel` (``predict``), :class:`~nlp_service.translate.TranslatorModel`
    (``translate``) or :class:`~nlp_service.generate.GeneratorModel` (``generate``). Its files are checked
    against the manifest's sizes and SHA-256 sums first, as the service does (unless ``NLP_VERIFY_CHECKSUMS``
    is false). ``device`` (``cpu``, ``cuda``, ``auto``) is where tensor models run (default ``NLP_DEVICE``);
    ``settings`` default to the environment's (``NLP_*`` variables).
    """
    settings = settings or Settings()
    if device is not None:
        settings = settings.model_copy(update={"device": device})
    folder = model_folder(model, settings.models_dir)
    verify_files(folder, read_manifest(folder), checksums=settings.verify_checksums)
    return load_model(folder, settings)


def model_folder(model: str | os.PathLike[str], models_dir: Path) -> Path:
    """The folder ``model`` names: a name under ``models_dir``, else a path; :class:`ModelNotFound` if neither."""
    path = Path(model)
    if len(path.parts) == 1 and (Path(models_dir) / path).is_dir():
        return Path(models_dir) / path
    if path.is_dir():
        return path
    available = [folder.name for folder, _ in list_models(models_dir)]
    raise ModelNotFound(f"no model {str(model)!r}: not a folder, nor a model in {models_dir} (there: "
                        f"{', '.join(available) or 'none'})", model=str(model), available=available)
