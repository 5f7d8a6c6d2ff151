"""HTTP service: :func:`create_app` builds the FastAPI application."""

from .app import create_app
from .errors import APIError

__all__ = ["APIError", "create_app"]
