"""nlp-service: a Spanish-first NLP toolkit and HTTP service.

Heavy libraries (gensim, spaCy, torch) are imported only by the model kinds that need them.
"""

from ._version import __version__
from .artifacts import ArtifactError, Manifest, list_models, read_manifest
from .config import Settings, get_settings
from .registry import load_model, register_kind

__all__ = [
    "ArtifactError",
    "Manifest",
    "Settings",
    "__version__",
    "get_settings",
    "list_models",
    "load_model",
    "read_manifest",
    "register_kind",
]
