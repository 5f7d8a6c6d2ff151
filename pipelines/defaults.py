"""The default models ``make serve`` builds from the shipped data when they are missing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nlp_service.artifacts import list_models
from nlp_service.config import Settings
from nlp_service.data import DATASETS_DIR, SPANISH_CORPUS


@dataclass(frozen=True)
class DefaultModel:
    name: str
    kind: str
    description: str
    build: Callable[[Settings, bool], Path]


def _build_w2v_es(settings: Settings, progress: bool) -> Path:
    from nlp_service.text import Tokenizer
    from nlp_service.vectors import Word2VecParams

    from .word2vec import build_word2vec

    # Small and quick on 2 cores; the pipeline trains bigger ones (see `nlp-service train word2vec`).
    # On this 2M-token corpus CBOW with 10 epochs scored best on the shipped analogy set among the
    # settings tried (0.19 vs 0.12 for skip-gram with 5 epochs) and trains about as fast.
    params = Word2VecParams(architecture="cbow", vector_size=100, window=5, min_count=3, epochs=10)
    path, _ = build_word2vec(
        list(SPANISH_CORPUS), settings.models_dir, "w2v-es", params=params, tokenizer=Tokenizer(),
        cache_dir=settings.cache_dir, analogy_file=DATASETS_DIR / "eval" / "analogies_es.txt",
        ann=True, overwrite=True, progress=progress,
    )
    return path


DEFAULT_MODELS: tuple[DefaultModel, ...] = (
    DefaultModel("w2v-es", "vectors", "Spanish word2vec (CBOW, 100d) on the shipped corpus", _build_w2v_es),
)


def build_missing(settings: Settings, *, progress: bool = True, only: list[str] | None = None) -> list[str]:
    """Build each default model whose folder is missing; return the names built."""
    present = {path.name for path, _ in list_models(settings.models_dir)}
    built = []
    for spec in DEFAULT_MODELS:
        if (only and spec.name not in only) or spec.name in present:
            continue
        print(f"building default model {spec.name}: {spec.description}", flush=True)
        spec.build(settings, progress)
        built.append(spec.name)
    return built
