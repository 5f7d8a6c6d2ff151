"""nlp-service: a Spanish-first NLP toolkit and HTTP service.

The model kinds are sub-packages (``vectors``, ``classify``, ``translate``, ``generate``), each with
its public API in its ``__init__``; ``serving`` serves them without HTTP, ``api`` over HTTP, ``cli``
from the command line. Heavy libraries (gensim, spaCy, torch) are imported only when a kind needs
them.

From Python: :func:`load` opens a saved model (``nlp_service.load("w2v-es").most_similar("rey")``);
:class:`Client` and :class:`AsyncClient` (``nlp_service.client``, imported on first use) call a running
service.
"""

from ._lazy import lazy_attributes
from ._load import load
from ._version import __version__
from .artifacts import ArtifactError, Manifest, list_models, read_manifest
from .config import Settings, get_settings
from .data import DataError
from .errors import InvalidInput, LimitExceeded, ModelNotFound, NLPServiceError, NotFound, Overloaded, Unavailable
from .options import read_config
from .registry import (
    BatchPredictor,
    Model,
    get_kind,
    get_trainer,
    load_model,
    register_kind,
    register_trainer,
    trainer_commands,
)
from .training import Trainer

__getattr__ = lazy_attributes(__name__, dict.fromkeys(("AsyncClient", "Client"), ".client"))

__all__ = [
    "ArtifactError",
    "AsyncClient",
    "BatchPredictor",
    "Client",
    "DataError",
    "InvalidInput",
    "LimitExceeded",
    "Manifest",
    "Model",
    "ModelNotFound",
    "NLPServiceError",
    "NotFound",
    "Overloaded",
    "Settings",
    "Trainer",
    "Unavailable",
    "__version__",
    "get_kind",
    "get_settings",
    "get_trainer",
    "list_models",
    "load",
    "load_model",
    "read_config",
    "read_manifest",
    "register_kind",
    "register_trainer",
    "trainer_commands",
]
