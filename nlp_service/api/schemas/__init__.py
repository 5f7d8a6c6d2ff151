"""Request and response bodies of the service's own endpoints, one module per capability; every
request body derives from :class:`RequestBody`."""

from ._base import RequestBody

__all__ = ["RequestBody"]
