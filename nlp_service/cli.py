"""Command line: ``nlp-service serve | defaults | train | fetch | convert | translate | generate | models``."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from .config import Settings, get_settings

app = typer.Typer(
    name="nlp-service",
    help="Spanish-first NLP toolkit and HTTP service. Settings come from NLP_* environment variables "
    "(see README); options given here override them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
train_app = typer.Typer(help="Train a model from text and save it as a named artifact.", no_args_is_help=True)
fetch_app = typer.Typer(help="Download published models or data (needs internet).", no_args_is_help=True)
app.add_typer(train_app, name="train")
app.add_typer(fetch_app, name="fetch")

ModelsDir = Annotated[
    Path | None, typer.Option("--models-dir", help="Models folder (default: NLP_MODELS_DIR or ./models).")
]
# Options that several commands share, named once.
Device = Annotated[str | None, typer.Option(help="cpu, cuda or auto (default: NLP_DEVICE).")]
Overwrite = Annotated[bool, typer.Option(help="Replace an existing model of that name.")]
ClipNorm = Annotated[float, typer.Option(help="Gradient clipping: largest gradient norm.")]
MaxMinutes = Annotated[float | None, typer.Option(help="Stop training after this many minutes.")]


def _settings(models_dir: Path | None = None, **overrides: Any) -> Settings:
    values = {k: v for k, v in overrides.items() if v is not None}
    if models_dir is not None:
        values["models_dir"] = models_dir
    return get_settings().model_copy(update=values)


@contextmanager
def _user_errors() -> Iterator[None]:
    """Expected failures (bad input, missing files, no network) print one line, exit code 1."""
    from .artifacts import ArtifactError
    from .data import DataError

    try:
        yield
    except (ArtifactError, DataError, ValueError, FileNotFoundError) as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        typer.secho("interrupted; nothing was saved", fg=typer.colors.YELLOW, err=True)
        raise typer.Exit(130) from None


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface (default: NLP_HOST or 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: NLP_PORT or 8000).")] = None,
    models_dir: ModelsDir = None,
    model: Annotated[list[str] | None, typer.Option("--model", "-m", help="Load only this model (repeat).")] = None,
    workers: Annotated[int | None, typer.Option(
        help="Server processes (default: NLP_WORKERS or 1); each loads the models and batches on its own.")] = None,
) -> None:
    """Start the HTTP service (OpenAPI docs at /docs)."""
    import copy
    import os

    import uvicorn
    import uvicorn.config

    from .api import create_app

    settings = _settings(models_dir, host=host, port=port, models=model or None, workers=workers)
    # Before numpy loads its BLAS (worker processes inherit it too); the app's lifespan also
    # applies the limit with threadpoolctl for apps built another way.
    for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(settings.blas_threads))
    # The service's own log lines (models loaded or failed, engine start-up) in uvicorn's format,
    # in every worker process (uvicorn applies log_config in each).
    log_config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    log_config["loggers"]["nlp_service"] = {"handlers": ["default"], "level": settings.log_level.upper(),
                                            "propagate": False}
    if settings.workers > 1:
        # Worker processes build their own app from the environment: pass the overrides on.
        os.environ["NLP_MODELS_DIR"] = str(Path(settings.models_dir).resolve())
        if settings.models is not None:
            os.environ["NLP_MODELS"] = json.dumps(settings.models)
        uvicorn.run("nlp_service.api.app:create_app", factory=True, host=settings.host, port=settings.port,
                    workers=settings.workers, log_level=settings.log_level, log_config=log_config)
        return
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level,
                log_config=log_config)


@app.command()
def defaults(
    models_dir: ModelsDir = None,
    only: Annotated[list[str] | None, typer.Option(help="Build only this default model (repeat).")] = None,
) -> None:
    """Build the default models from the shipped data if they are missing (what `make serve` runs)."""
    from pipelines.defaults import DEFAULT_MODELS, build_missing

    settings = _settings(models_dir)
    with _user_errors():
        built = build_missing(settings, only=only)
    names = [m.name for m in DEFAULT_MODELS]
    typer.echo(f"built: {', '.join(built)}" if built else f"default models present: {', '.join(names)}")


class Architecture(StrEnum):
    skipgram = "skipgram"
    cbow = "cbow"


class Loss(StrEnum):
    negative = "negative"
    hs = "hs"


@train_app.command("word2vec")
def train_word2vec(
    corpus: Annotated[list[Path], typer.Argument(help="Text files: .txt, .jsonl, .csv, .tsv, optionally .gz/.bz2.")],
    name: Annotated[str, typer.Option(help="Model name (folder under the models dir).")],
    column: Annotated[str | None, typer.Option(help="Text column/field of CSV, TSV or JSONL files.")] = None,
    architecture: Annotated[Architecture, typer.Option(help="skipgram or cbow.")] = Architecture.skipgram,
    loss: Annotated[Loss, typer.Option(help="negative sampling or hierarchical softmax (hs).")] = Loss.negative,
    negative: Annotated[int, typer.Option(help="Noise words per positive (negative sampling).")] = 5,
    vector_size: Annotated[int, typer.Option(help="Dimensions.")] = 100,
    window: Annotated[int, typer.Option(help="Context window.")] = 5,
    min_count: Annotated[int, typer.Option(help="Ignore words rarer than this.")] = 5,
    sample: Annotated[float, typer.Option(help="Down-sampling threshold of frequent words.")] = 1e-3,
    epochs: Annotated[int, typer.Option(help="Passes over the corpus.")] = 5,
    seed: Annotated[int, typer.Option(help="Random seed (bit-exact runs also need --workers 1).")] = 1,
    workers: Annotated[int | None, typer.Option(help="Threads/processes (default: all cores).")] = None,
    phrases: Annotated[bool, typer.Option(help="Detect bigram phrases (new_york) before training.")] = False,
    phrases_min_count: Annotated[int, typer.Option(help="Phrases: min bigram count.")] = 5,
    phrases_threshold: Annotated[float, typer.Option(help="Phrases: score threshold.")] = 10.0,
    lowercase: Annotated[bool, typer.Option(help="Lowercase tokens.")] = True,
    strip_accents: Annotated[bool, typer.Option(help="Remove accents (á->a; keeps ñ).")] = False,
    keep_punct: Annotated[bool, typer.Option(help="Keep punctuation tokens.")] = False,
    eval_similarity: Annotated[Path | None, typer.Option(help="Word-pair file: word1<TAB>word2<TAB>score.")] = None,
    eval_analogy: Annotated[Path | None, typer.Option(help="Analogy file in questions-words.txt format.")] = None,
    export: Annotated[list[str] | None, typer.Option(help="Also write word2vec-text / word2vec-binary.")] = None,
    ann: Annotated[bool, typer.Option(help="Build an HNSW index for approximate search.")] = True,
    overwrite: Overwrite = False,
    models_dir: ModelsDir = None,
) -> None:
    """Train word2vec (CBOW or skip-gram) from raw text and save it as a vectors model."""
    import os

    from pipelines.word2vec import build_word2vec

    from .text import Tokenizer
    from .vectors import Word2VecParams

    settings = _settings(models_dir)
    params = Word2VecParams(
        architecture=architecture.value, loss=loss.value, negative=negative, vector_size=vector_size,
        window=window, min_count=min_count, sample=sample, epochs=epochs, seed=seed,
        workers=workers or max(1, os.cpu_count() or 1), phrases=phrases, phrases_min_count=phrases_min_count,
        phrases_threshold=phrases_threshold,
    )
    tokenizer = Tokenizer(lowercase=lowercase, strip_accents=strip_accents, keep_punct=keep_punct)
    with _user_errors():
        path, metrics = build_word2vec(
            corpus, settings.models_dir, name, params=params, tokenizer=tokenizer, column=column,
            cache_dir=settings.cache_dir, similarity_file=eval_similarity, analogy_file=eval_analogy,
            exports=export or (), ann=ann, overwrite=overwrite,
        )
    typer.echo(json.dumps({"model": str(path), "metrics": metrics}, indent=2))


class Features(StrEnum):
    binary = "binary"
    count = "count"
    tfidf = "tfidf"


class Analyzer(StrEnum):
    word = "word"
    char = "char"


class LinearModel(StrEnum):
    logreg = "logreg"
    linearsvc = "linearsvc"
    nb = "nb"


class Cell(StrEnum):
    rnn = "rnn"
    lstm = "lstm"
    gru = "gru"


DataFiles = Annotated[list[Path], typer.Argument(help="Labeled CSV, TSV or JSONL files (.gz/.bz2 ok).")]
TextColumn = Annotated[str, typer.Option(help="Column (or JSONL field) holding the text.")]
LabelColumn = Annotated[str, typer.Option(help="Column (or JSONL field) holding the label.")]
Fraction = Annotated[float, typer.Option(min=0.0, max=0.9)]
Task = Annotated[str, typer.Option(help="What the labels are: 'sentiment' or any name; shown in /v1/models.")]


@train_app.command("bow")
def train_bow_cmd(
    data: DataFiles,
    name: Annotated[str, typer.Option(help="Model name (folder under the models dir).")],
    text_column: TextColumn = "text",
    label_column: LabelColumn = "label",
    features: Annotated[Features, typer.Option(help="binary, count or tfidf.")] = Features.tfidf,
    analyzer: Annotated[Analyzer, typer.Option(help="word or char n-grams.")] = Analyzer.word,
    ngram_min: Annotated[int, typer.Option(help="Smallest n-gram.")] = 1,
    ngram_max: Annotated[int, typer.Option(help="Largest n-gram (word 1-2 / 1-3; char e.g. 2-5).")] = 2,
    classifier: Annotated[LinearModel, typer.Option(help="logreg, linearsvc or nb.")] = LinearModel.logreg,
    min_df: Annotated[int, typer.Option(help="Drop n-grams seen in fewer documents.")] = 1,
    c: Annotated[float, typer.Option("--c", help="Inverse regularisation (logreg, linearsvc).")] = 1.0,
    validation: Fraction = 0.1,
    test: Fraction = 0.1,
    seed: Annotated[int, typer.Option(help="Seed of the stratified split.")] = 13,
    cv: Annotated[int | None, typer.Option(help="Also report k-fold cross-validation on train+validation.")] = None,
    task: Task = "classification",
    language: Annotated[str, typer.Option(help="Language of the texts: spaCy's tokenizer rules (es, en, ...).")]
    = "es",
    overwrite: Overwrite = False,
    models_dir: ModelsDir = None,
) -> None:
    """Train an n-gram baseline (bag of words, counts or TF-IDF + a linear model) on labeled texts."""
    from pipelines.classify import train_bow

    from .classify import BowParams

    params = BowParams(features=features.value, analyzer=analyzer.value, ngram_min=ngram_min,  # type: ignore[arg-type]
                       ngram_max=ngram_max, classifier=classifier.value, min_df=min_df, C=c)  # type: ignore[arg-type]
    settings = _settings(models_dir)
    with _user_errors():
        path, metrics = train_bow(data, settings.models_dir, name, params=params, text_column=text_column,
                                  label_column=label_column, validation=validation, test=test, seed=seed, cv=cv,
                                  task=task, language=language, overwrite=overwrite)
    typer.echo(json.dumps({"model": str(path), "test": metrics["test"], "cross_validation":
                           metrics.get("cross_validation")}, indent=2))


@train_app.command("rnn")
def train_rnn_cmd(
    data: DataFiles,
    name: Annotated[str, typer.Option(help="Model name (folder under the models dir).")],
    text_column: TextColumn = "text",
    label_column: LabelColumn = "label",
    cell: Annotated[Cell, typer.Option(help="rnn (Elman), lstm or gru.")] = Cell.lstm,
    layers: Annotated[int, typer.Option(help="Stacked recurrent layers.")] = 1,
    bidirectional: Annotated[bool, typer.Option(help="Read texts in both directions.")] = True,
    hidden_size: Annotated[int, typer.Option(help="Units per direction.")] = 128,
    embedding_dim: Annotated[int, typer.Option(help="Embedding size (ignored with --vectors).")] = 128,
    dropout: Annotated[float, typer.Option(help="Dropout on embeddings, between layers and before the output.")]
    = 0.5,
    vectors: Annotated[Path | None, typer.Option(
        help="Initial embeddings: a vectors model folder or a word2vec/fastText file.")] = None,
    freeze_embeddings: Annotated[bool, typer.Option(help="Keep the initial embeddings fixed.")] = False,
    epochs: Annotated[int, typer.Option(help="Most epochs.")] = 10,
    patience: Annotated[int, typer.Option(help="Stop after this many epochs without a better val macro-F1.")] = 3,
    batch_size: Annotated[int, typer.Option(help="Texts per step.")] = 64,
    learning_rate: Annotated[float, typer.Option(help="Adam learning rate.")] = 2e-3,
    clip_norm: ClipNorm = 1.0,
    max_length: Annotated[int, typer.Option(help="Tokens kept per text.")] = 100,
    seed: Annotated[int, typer.Option(help="Seed of the initialisation and the batches.")] = 13,
    split_seed: Annotated[int, typer.Option(help="Seed of the stratified split.")] = 13,
    validation: Fraction = 0.1,
    test: Fraction = 0.1,
    device: Device = None,
    task: Task = "classification",
    language: Annotated[str, typer.Option(help="Language of the texts: spaCy's tokenizer rules (es, en, ...).")]
    = "es",
    overwrite: Overwrite = False,
    models_dir: ModelsDir = None,
) -> None:
    """Train a recurrent classifier (RNN/LSTM/GRU). Interrupted? Run the same command again: it resumes."""
    from pipelines.classify import train_recurrent

    from .classify.rnn import RNNParams

    settings = _settings(models_dir)
    with _user_errors():
        params = RNNParams(cell=cell.value, layers=layers, bidirectional=bidirectional,  # type: ignore[arg-type]
                           hidden_size=hidden_size, embedding_dim=embedding_dim, dropout=dropout,
                           freeze_embeddings=freeze_embeddings, epochs=epochs, patience=patience,
                           batch_size=batch_size, learning_rate=learning_rate, clip_norm=clip_norm,
                           max_length=max_length, seed=seed)
        path, metrics = train_recurrent(
            data, settings.models_dir, name, params=params, text_column=text_column, label_column=label_column,
            validation=validation, test=test, split_seed=split_seed, vectors=vectors,
            checkpoint_dir=settings.cache_dir / "checkpoints", device=device or settings.device, task=task,
            language=language, overwrite=overwrite,
        )
    typer.echo(json.dumps({"model": str(path), "test": metrics["test"], "best_epoch": metrics["best_epoch"],
                           "resumed_from_epoch": metrics["resumed_from_epoch"]}, indent=2))


class Subword(StrEnum):
    bpe = "bpe"
    unigram = "unigram"


class AttentionKind(StrEnum):
    luong = "luong"
    bahdanau = "bahdanau"


class PairFormat(StrEnum):
    auto = "auto"
    tsv = "tsv"
    csv = "csv"
    jsonl = "jsonl"
    anki = "anki"


@train_app.command("translator")
def train_translator_cmd(
    data: Annotated[list[Path] | None, typer.Argument(
        help="Parallel files: TSV/CSV/JSONL with a column per language code (es, en), or a Tatoeba/Anki "
        "export (spa-eng.zip or its spa.txt). Default: the shipped Bible + LibreOffice pairs.")] = None,
    name: Annotated[str, typer.Option(help="Model name (folder under the models dir).")] = "",
    source: Annotated[str, typer.Option(help="Source language code (a column name of the files).")] = "es",
    target: Annotated[str, typer.Option(help="Target language code.")] = "en",
    format: Annotated[PairFormat, typer.Option(help="File format (default: from the file name).")] = PairFormat.auto,
    source_column: Annotated[str | None, typer.Option(help="Source column, if not named by the language.")] = None,
    target_column: Annotated[str | None, typer.Option(help="Target column, if not named by the language.")] = None,
    subword: Annotated[Subword, typer.Option(help="Subword algorithm: bpe or unigram.")] = Subword.bpe,
    vocab_size: Annotated[int, typer.Option(help="Subword vocabulary size (per language, or joint).")] = 8000,
    joint_vocab: Annotated[bool, typer.Option(help="One vocabulary for both languages (shares embeddings).")]
    = False,
    embedding_dim: Annotated[int, typer.Option(help="Embedding size.")] = 256,
    hidden_size: Annotated[int, typer.Option(help="Decoder units (the encoder has half per direction).")] = 512,
    encoder_layers: Annotated[int, typer.Option(help="Stacked bidirectional encoder layers.")] = 1,
    decoder_layers: Annotated[int, typer.Option(help="Stacked decoder layers.")] = 1,
    attention: Annotated[AttentionKind, typer.Option(help="Score: luong (general) or bahdanau (additive).")]
    = AttentionKind.luong,
    dropout: Annotated[float, typer.Option(help="Dropout on embeddings, between layers, before the output.")] = 0.2,
    label_smoothing: Annotated[float, typer.Option(help="Label smoothing of the cross-entropy.")] = 0.1,
    epochs: Annotated[int, typer.Option(help="Most epochs.")] = 20,
    patience: Annotated[int, typer.Option(help="Stop after this many epochs without a better val BLEU.")] = 3,
    max_minutes: MaxMinutes = None,
    batch_tokens: Annotated[int, typer.Option(help="Padded tokens per batch (batches group similar lengths).")]
    = 4000,
    learning_rate: Annotated[float, typer.Option(help="Adam learning rate (halved after an epoch without "
                                                      "a better val BLEU).")] = 1e-3,
    clip_norm: ClipNorm = 1.0,
    max_words: Annotated[int, typer.Option(help="Drop pairs with a side longer than this many words.")] = 80,
    max_ratio: Annotated[float, typer.Option(help="Drop pairs whose longer side has more than this many times "
                                                  "the words of the shorter (+2).")] = 3.0,
    max_tokens: Annotated[int, typer.Option(help="Cut each side to this many subword pieces.")] = 120,
    beam_size: Annotated[int, typer.Option(help="Beam size of the test-set evaluation.")] = 5,
    validation: Fraction = 0.05,
    test: Fraction = 0.05,
    seed: Annotated[int, typer.Option(help="Seed of the initialisation and the batches.")] = 13,
    split_seed: Annotated[int, typer.Option(help="Seed of the train/validation/test split.")] = 13,
    device: Device = None,
    overwrite: Overwrite = False,
    models_dir: ModelsDir = None,
) -> None:
    """Train a seq2seq translator (BiLSTM encoder, LSTM decoder, attention). Interrupted? Run it again: it resumes."""
    from pipelines.translate import build_translator

    from .data import PARALLEL_ES_EN
    from .translate import LengthFilter, Seq2SeqParams

    settings = _settings(models_dir)
    with _user_errors():
        params = Seq2SeqParams(
            subword=subword.value, vocab_size=vocab_size, joint_vocab=joint_vocab,  # type: ignore[arg-type]
            max_source_tokens=max_tokens, max_target_tokens=max_tokens, embedding_dim=embedding_dim,
            hidden_size=hidden_size, encoder_layers=encoder_layers, decoder_layers=decoder_layers,
            attention=attention.value, dropout=dropout, label_smoothing=label_smoothing,  # type: ignore[arg-type]
            batch_tokens=batch_tokens, epochs=epochs, learning_rate=learning_rate, clip_norm=clip_norm,
            patience=patience, max_minutes=max_minutes, seed=seed,
        )
        path, metrics = build_translator(
            data or list(PARALLEL_ES_EN), settings.models_dir, name or f"translate-{source}-{target}",
            source=source, target=target, params=params, length=LengthFilter(max_words=max_words, max_ratio=max_ratio),
            validation=validation, test=test, split_seed=split_seed,
            fmt=None if format == PairFormat.auto else format.value, source_column=source_column,
            target_column=target_column, beam_size=beam_size, checkpoint_dir=settings.cache_dir / "checkpoints",
            device=device or settings.device, overwrite=overwrite,
        )
    typer.echo(json.dumps({"model": str(path), "test": metrics["test"], "best_epoch": metrics["best_epoch"],
                           "stopped": metrics["stopped"], "train_seconds": metrics["train_seconds"],
                           "samples": metrics["samples"][:3]}, indent=2, ensure_ascii=False))


@train_app.command("gpt2")
def train_gpt2_cmd(
    corpus: Annotated[list[Path] | None, typer.Argument(
        help="Text files (.txt one text per line, .jsonl/.csv/.tsv with --column; .gz/.bz2 ok). "
        "Default: the shipped Spanish corpus.")] = None,
    name: Annotated[str, typer.Option(help="Model name (folder under the models dir).")] = "gpt2-es",
    column: Annotated[str | None, typer.Option(help="Text column/field of CSV, TSV or JSONL files.")] = None,
    init: Annotated[str | None, typer.Option(
        help="Fine-tune this checkpoint (a save_pretrained folder, a generator model folder's hf/, or a hub name "
        "with internet) instead of training from scratch; its tokenizer and size are kept.")] = None,
    vocab_size: Annotated[int, typer.Option(help="Byte-level BPE vocabulary size (from scratch).")] = 8000,
    n_layer: Annotated[int, typer.Option(help="Transformer blocks (from scratch).")] = 4,
    n_head: Annotated[int, typer.Option(help="Attention heads (from scratch).")] = 4,
    n_embd: Annotated[int, typer.Option(help="Width (from scratch).")] = 256,
    block_size: Annotated[int, typer.Option(help="Tokens per training sequence (the model's context).")] = 128,
    dropout: Annotated[float, typer.Option(help="Dropout (from scratch).")] = 0.1,
    batch_size: Annotated[int, typer.Option(help="Sequences per step.")] = 16,
    learning_rate: Annotated[float, typer.Option(help="Peak AdamW learning rate.")] = 1e-3,
    weight_decay: Annotated[float, typer.Option(help="AdamW weight decay (matrices only).")] = 0.1,
    warmup_steps: Annotated[int, typer.Option(help="Linear warm-up steps, then cosine decay.")] = 100,
    max_steps: Annotated[int, typer.Option(help="Optimizer steps.")] = 2000,
    max_minutes: MaxMinutes = None,
    clip_norm: ClipNorm = 1.0,
    validation: Annotated[float, typer.Option(min=0.001, max=0.5, help="Held-out share of the texts.")] = 0.02,
    seed: Annotated[int, typer.Option(help="Seed of initialisation and batches.")] = 13,
    device: Device = None,
    overwrite: Overwrite = False,
    models_dir: ModelsDir = None,
) -> None:
    """Train a small GPT-2 (byte-level BPE + GPT2Config) or fine-tune one. Interrupted? Run it again: it resumes."""
    from pipelines.generate import build_gpt2

    from .data import SPANISH_CORPUS
    from .generate import GPT2TrainParams

    settings = _settings(models_dir)
    with _user_errors():
        params = GPT2TrainParams(vocab_size=vocab_size, n_layer=n_layer, n_head=n_head, n_embd=n_embd,
                                 block_size=block_size, dropout=dropout, batch_size=batch_size,
                                 learning_rate=learning_rate, weight_decay=weight_decay, warmup_steps=warmup_steps,
                                 max_steps=max_steps, max_minutes=max_minutes, clip_norm=clip_norm, seed=seed)
        path, metrics = build_gpt2(corpus or list(SPANISH_CORPUS), settings.models_dir, name, params=params,
                                   init=init, column=column, validation=validation,
                                   checkpoint_dir=settings.cache_dir / "checkpoints", device=device or settings.device,
                                   overwrite=overwrite)
    typer.echo(json.dumps({"model": str(path), "test": metrics["test"], "steps": metrics["steps"],
                           "stopped": metrics["stopped"], "train_seconds": metrics["train_seconds"],
                           "samples": metrics["samples"][:2]}, indent=2, ensure_ascii=False))


class CcFormat(StrEnum):
    bin = "bin"
    vec = "vec"


@fetch_app.command("cc-es")
def fetch_cc_es(
    format: Annotated[CcFormat, typer.Option(help="bin (7 GB, keeps subwords for unseen words) or vec (1.3 GB).")]
    = CcFormat.bin,
    dest: Annotated[Path | None, typer.Option(help="Folder (default: NLP_CACHE_DIR/downloads).")] = None,
    url: Annotated[str | None, typer.Option(help="Another address (a mirror).")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the server.")] = 20.0,
) -> None:
    """Download the official Spanish fastText vectors (cc.es.300) with resume and size check."""
    from pipelines.pretrained import fetch_cc_es as fetch

    settings = _settings()
    with _user_errors():
        path = fetch(dest or settings.cache_dir / "downloads", format.value, url=url, timeout=timeout)
    typer.echo(f"downloaded {path}\nnext: nlp-service convert {path} --name cc-es --limit 200000")


@fetch_app.command("tatoeba")
def fetch_tatoeba_cmd(
    lang: Annotated[str, typer.Option(help="Three-letter code of the language paired with English.")] = "spa",
    dest: Annotated[Path | None, typer.Option(help="Folder (default: NLP_CACHE_DIR/downloads).")] = None,
    url: Annotated[str | None, typer.Option(help="Another address (a mirror).")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the server.")] = 20.0,
) -> None:
    """Download the Tatoeba sentence pairs (manythings.org Anki export, e.g. spa-eng.zip) for `train translator`."""
    from pipelines.pretrained import fetch_tatoeba

    settings = _settings()
    with _user_errors():
        path = fetch_tatoeba(dest or settings.cache_dir / "downloads", lang, url=url, timeout=timeout)
    typer.echo(f"downloaded {path}\nnext: nlp-service train translator {path} --source es --target en")


@app.command()
def translate(
    texts: Annotated[list[str], typer.Argument(help="Texts to translate ('-' reads one per line from stdin).")],
    model: Annotated[str, typer.Option(help="Translator model name.")] = "translate-es-en",
    beam_size: Annotated[int, typer.Option(min=1, help="Beam width (1: greedy).")] = 5,
    length_penalty: Annotated[float, typer.Option(min=0.0, help="Beam length normalisation (GNMT alpha).")] = 0.6,
    device: Device = None,
    models_dir: ModelsDir = None,
) -> None:
    """Translate texts with a saved translator, one translation per line."""
    from .translate import TranslatorModel

    settings = _settings(models_dir)
    if texts == ["-"]:
        texts = [line.strip() for line in sys.stdin if line.strip()]
    with _user_errors():
        translator = TranslatorModel.load(Path(settings.models_dir) / model, device=device or settings.device)
        translator.check_lengths(texts)
        for line in translator.translate(texts, beam_size=beam_size, length_penalty=length_penalty):
            typer.echo(line)


@app.command()
def generate(
    prompt: Annotated[str, typer.Argument(help="The prompt.")],
    model: Annotated[str, typer.Option(help="Generator model name.")] = "gpt2-es",
    max_new_tokens: Annotated[int, typer.Option(min=1, help="Most tokens to generate.")] = 50,
    sample: Annotated[bool, typer.Option(help="Sample instead of greedy decoding.")] = False,
    temperature: Annotated[float, typer.Option(min=0.01, help="Sampling temperature.")] = 1.0,
    top_k: Annotated[int, typer.Option(min=0, help="Sample among the k most likely tokens (0: all).")] = 0,
    top_p: Annotated[float, typer.Option(min=0.01, max=1.0, help="Nucleus sampling mass.")] = 1.0,
    repetition_penalty: Annotated[float, typer.Option(min=0.01, help="transformers' repetition penalty.")] = 1.0,
    seed: Annotated[int | None, typer.Option(help="Sampling seed.")] = None,
    device: Device = None,
    models_dir: ModelsDir = None,
) -> None:
    """Continue a prompt with a saved generator model (prints the prompt and its continuation)."""
    from .generate import GeneratorModel, GPT2Engine, SamplingParams

    settings = _settings(models_dir)
    with _user_errors():
        gen = GeneratorModel.load(Path(settings.models_dir) / model, device=device or settings.device)
        engine = GPT2Engine(gen.model, max_slots=1, device=str(gen.device))
        ids = gen.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        params = SamplingParams(max_new_tokens=min(max_new_tokens, engine.max_seq - len(ids)), do_sample=sample,
                                temperature=temperature, top_k=top_k, top_p=top_p,
                                repetition_penalty=repetition_penalty, seed=seed)
        out = engine.generate([ids], params)[0]
    typer.echo(prompt + gen.tokenizer.decode(out, skip_special_tokens=True))


@app.command("import-generator")
def import_generator_cmd(
    source: Annotated[str, typer.Argument(help="A save_pretrained folder, or a hub name with internet "
                                               "(gpt2, DeepESP/gpt2-spanish, ...).")],
    name: Annotated[str, typer.Option(help="Model name (folder under the models dir).")],
    overwrite: Overwrite = False,
    models_dir: ModelsDir = None,
) -> None:
    """Save a pretrained GPT-2-family model (transformers) as a generator the service can load."""
    from .generate import import_generator

    settings = _settings(models_dir)
    with _user_errors():
        path = import_generator(source, settings.models_dir, name, overwrite=overwrite)
    typer.echo(f"saved {path}")


@app.command("import-marian")
def import_marian_cmd(
    source: Annotated[str, typer.Argument(help="A save_pretrained folder, or a hub name with internet "
                                               "(e.g. Helsinki-NLP/opus-mt-es-en).")],
    name: Annotated[str, typer.Option(help="Model name (folder under the models dir).")],
    source_lang: Annotated[str, typer.Option("--source", help="Source language code.")] = "es",
    target_lang: Annotated[str, typer.Option("--target", help="Target language code.")] = "en",
    overwrite: Overwrite = False,
    models_dir: ModelsDir = None,
) -> None:
    """Save a pretrained Marian translation model (transformers) as a translator the service can load."""
    from .translate import import_marian

    settings = _settings(models_dir)
    with _user_errors():
        path = import_marian(source, settings.models_dir, name, source_lang=source_lang, target_lang=target_lang,
                             overwrite=overwrite)
    typer.echo(f"saved {path}")


@app.command()
def convert(
    source: Annotated[Path, typer.Argument(help="fastText .bin, .vec / word2vec text, or word2vec binary (.gz ok).")],
    name: Annotated[str, typer.Option(help="Model name (folder under the models dir).")],
    format: Annotated[str | None, typer.Option(
        help="fasttext-bin, word2vec-text or word2vec-binary (default: from the file).")] = None,
    limit: Annotated[int | None, typer.Option(help="Keep only the first N (most frequent) words.")] = None,
    ann: Annotated[bool, typer.Option(help="Build an HNSW index and measure its recall@10.")] = True,
    lowercase: Annotated[bool, typer.Option(help="Lowercase query text (match the vectors' casing).")] = False,
    overwrite: Overwrite = False,
    models_dir: ModelsDir = None,
) -> None:
    """Convert pretrained vectors into the native store: normalised, memory-mapped, instant to load."""
    from .text import Tokenizer
    from .vectors import FORMATS, convert_vectors

    if format is not None and format not in FORMATS:
        typer.secho(f"error: --format must be one of {', '.join(FORMATS)}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    settings = _settings(models_dir)
    with _user_errors():
        path = convert_vectors(source, settings.models_dir, name, fmt=format, limit=limit, ann=ann,  # type: ignore[arg-type]
                               tokenizer=Tokenizer(lowercase=lowercase, keep_punct=True), overwrite=overwrite)
    from .artifacts import read_manifest

    typer.echo(json.dumps({"model": str(path), "metrics": read_manifest(path).metrics}, indent=2))


@app.command()
def models(
    models_dir: ModelsDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifests as JSON.")] = False,
) -> None:
    """List the models in the models folder."""
    from .artifacts import list_models

    settings = _settings(models_dir)
    found = list_models(settings.models_dir)
    if as_json:
        typer.echo(json.dumps([m.to_dict() | {"path": str(p)} for p, m in found], indent=2, ensure_ascii=False))
        return
    if not found:
        typer.echo(f"no models in {settings.models_dir} (run `nlp-service defaults` or `make serve`)")
        return
    for _, m in found:
        size = sum(f.get("size", 0) for f in m.files.values())
        typer.echo(f"{m.name:24} {m.kind:10} {size / 1e6:9.1f} MB  {m.created_at}  {_summary(m.metrics)}")


def _summary(metrics: dict[str, Any]) -> str:
    parts = []
    if "train" in metrics:
        parts.append(f"vocab={metrics['train'].get('vocabulary')}")
    if "analogy" in metrics:
        parts.append(f"analogy_acc={metrics['analogy']['accuracy']}")
    if "similarity" in metrics:
        parts.append(f"spearman={metrics['similarity']['spearman']}")
    if "test" in metrics and "accuracy" in metrics["test"]:
        parts.append(f"test_acc={metrics['test']['accuracy']} macro_f1={metrics['test']['macro_f1']}")
    if "test" in metrics and "perplexity" in metrics["test"]:
        parts.append(f"test_perplexity={metrics['test']['perplexity']}")
    if "test" in metrics and "bleu" in metrics["test"]:
        parts.append(f"test_bleu={metrics['test']['bleu']} chrf={metrics['test']['chrf']}")
    if "ann" in metrics:
        parts.append(f"ann_recall@10={metrics['ann'].get('recall_at_10')}")
    return " ".join(parts)


def main(argv: list[str] | None = None) -> Callable[..., Any] | None:
    import os

    # Before torch loads its OpenMP runtime: idle threads sleep instead of spinning. On a busy
    # machine spinning threads slowed LSTM training here about 100-fold (7 s/batch vs 0.07 s).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return app(args=argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    main()
