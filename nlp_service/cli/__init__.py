"""The ``nlp-service`` command: ``serve``, ``hash-key``, ``train``, ``fetch``/``convert``/``import-*``,
``translate``/``generate``, ``plot``, ``models``/``defaults``; one module per concern. Training options are derived
from the library's option dataclasses (``cli/_options.py``)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from . import batch, fetch, infer, keys, models, plot, serve, train  # noqa: F401  (each adds its commands to the app)
from ._app import app


def main(argv: list[str] | None = None) -> Callable[..., Any] | None:
    # Before torch loads its OpenMP runtime: idle threads sleep instead of spinning. On a busy
    # machine spinning threads slowed LSTM training here about 100-fold (7 s/batch vs 0.07 s).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return app(args=argv if argv is not None else sys.argv[1:])


__all__ = ["app", "main"]
