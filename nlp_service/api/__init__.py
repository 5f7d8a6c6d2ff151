"""The HTTP service: :func:`create_app` builds the FastAPI application over :class:`nlp_service.serving.Service`.

Routes only translate HTTP to the serving layer and back; the TGI and OpenAI shapes live in
``api/protocols``, the status code of each domain error in ``api/errors.py``.
"""

from .app import create_app

__all__ = ["create_app"]
