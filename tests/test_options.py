"""Options declared once: the dataclass fields, their checks, config files (TOML/YAML), the command line
derived from them, ``params.toml`` saved with each model and ``--config`` repeating a run."""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer.core
import typer.main
from typer.testing import CliRunner, Result

from nlp_service import config, options
from nlp_service.artifacts import read_manifest
from nlp_service.classify import BowParams, BowRun, RecurrentRun, RNNParams
from nlp_service.cli import app
from nlp_service.config import Settings
from nlp_service.defaults import DEFAULT_MODELS
from nlp_service.errors import InvalidInput
from nlp_service.generate import SamplingParams
from nlp_service.options import MissingOption, option
from nlp_service.registry import get_trainer, trainer_commands
from nlp_service.translate import Seq2SeqParams


@dataclasses.dataclass(kw_only=True)
class Example:
    files: list[Path] = option(help="Input files.", argument=True)
    name: str = option(help="A name.")
    size: int = option(8, "How many.", min=1, max=64)
    rate: float = option(0.5, "A rate.", above=0, below=1)
    mode: str = option("fast", "fast or slow.")
    limit: int | None = option(None, "Optional cap.", min=1)
    flag: bool = option(False, "A switch.", flag="--switch")
    stops: tuple[str, ...] = option((), "Stop strings.")
    workers: int = option(default_factory=lambda: 3, help="Threads.", default_help="all cores")


@pytest.fixture(autouse=True)
def no_outside_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in [k for k in os.environ if k.startswith("NLP_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("NLP_CACHE_DIR", str(tmp_path / "cache"))
    config.get_settings.cache_clear()
    yield
    config.get_settings.cache_clear()


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "250"})


# ---- the declarations ---------------------------------------------------------------------------


def test_specs_describe_each_field() -> None:
    by_key = {s.key: s for s in options.specs(Example)}
    assert list(by_key) == ["files", "name", "size", "rate", "mode", "limit", "switch", "stops", "workers"]
    assert by_key["files"].required and by_key["files"].is_sequence and by_key["files"].item is Path
    assert by_key["name"].required and not by_key["size"].required
    assert by_key["limit"].optional and not by_key["size"].optional
    assert by_key["switch"].name == "flag" and by_key["switch"].flag == "--switch"
    assert by_key["workers"].default is None  # a computed default
    assert options.specs(SamplingParams)[1].key == "sample"  # do_sample is --sample
    assert options.default_of(Example, "size") == 8


def test_build_converts_and_fills_defaults(tmp_path: Path) -> None:
    built = options.build(Example, {"files": ["a.txt", "/abs/b.txt"], "name": "x", "rate": 1 / 4, "stops": ["\n"],
                                    "switch": True}, base_dir=tmp_path)
    assert built.files == [tmp_path / "a.txt", Path("/abs/b.txt")]  # relative paths: from base_dir
    assert (built.size, built.rate, built.flag, built.stops, built.workers) == (8, 0.25, True, ("\n",), 3)
    assert options.build(Example, {"files": ["a"], "name": "x", "size": 5, "rate": 1}).rate == 1.0  # int -> float
    assert options.build(Example, {"files": ["a"], "name": "x", "workers": None}).workers == 3  # None: default


@pytest.mark.parametrize(("given", "error", "message"), [
    ({"name": "x"}, MissingOption, "missing FILES"),
    ({"files": [], "name": "x"}, MissingOption, "missing FILES"),
    ({"files": ["a"]}, MissingOption, "missing option --name (or 'name' in a config file)"),
    ({"files": ["a"], "name": "x", "size": "8"}, InvalidInput, "size: expected a whole number, got '8'"),
    ({"files": ["a"], "name": "x", "size": True}, InvalidInput, "size: expected a whole number"),
    ({"files": ["a"], "name": "x", "switch": "yes"}, InvalidInput, "switch: expected true or false"),
    ({"files": [3], "name": "x"}, InvalidInput, "files: expected a path, got 3"),
])
def test_build_says_what_is_wrong(given: dict[str, object], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        options.build(Example, given)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("size", 0, "size must be at least 1"),
    ("size", 65, "size must be at most 64"),
    ("rate", 0.0, "rate must be positive"),
    ("rate", 1.0, "rate must be less than 1"),
    ("limit", 0, "limit must be at least 1"),
])
def test_check_bounds(field: str, value: object, message: str) -> None:
    ok = Example(files=[Path("a")], name="x")
    options.check(ok)  # the defaults are in bounds; None (limit) is not checked
    with pytest.raises(InvalidInput, match=message):
        options.check(dataclasses.replace(ok, **{field: value}))


def test_check_choices_of_the_library_params() -> None:
    with pytest.raises(InvalidInput, match="cell must be one of rnn, lstm, gru, cnn, not 'transformer'"):
        RNNParams(cell="transformer").validate()  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="C must be positive"):
        BowParams(C=0).validate()
    with pytest.raises(ValueError, match="hidden_size must be even"):
        Seq2SeqParams(hidden_size=33).validate()


def test_an_option_that_may_be_none_defaults_to_none() -> None:
    """Leaving an option out of a config file (TOML cannot say None) must mean the same as None."""

    @dataclasses.dataclass
    class Wrong:
        cap: int | None = option(10, "A cap.")

    with pytest.raises(TypeError, match="may be None must default to None"):
        options.specs(Wrong)
    for command in trainer_commands():  # and every shipped option group is declared so
        for group in get_trainer(command).groups:
            assert options.specs(group)


def test_split_refuses_unknown_options() -> None:
    with pytest.raises(InvalidInput, match=r"unknown options 'colour', 'sise' \(known: .*size"):
        options.split([Example], {"sise": 1, "colour": 2, "command": "x"})


# ---- config files ---------------------------------------------------------------------------------


def test_config_files_toml_and_yaml(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text('command = "bow"\nname = "x"\nngram_max = 3\n', encoding="utf-8")
    (tmp_path / "a.yaml").write_text("command: bow\nname: x\nngram_max: 3\n", encoding="utf-8")
    assert options.read_config(tmp_path / "a.toml") == options.read_config(tmp_path / "a.yaml") == {
        "command": "bow", "name": "x", "ngram_max": 3}


@pytest.mark.parametrize(("filename", "content", "message"), [
    ("a.toml", "name = ", "cannot read"),
    ("a.yaml", "name: [x", "cannot read"),
    ("a.yaml", "- a\n- b\n", "expected option = value pairs"),
    ("a.toml", "[bow]\nname = 'x'\n", "options are top-level keys; bow is a table"),
    ("a.json", "{}", "a config file is .toml, .yaml or .yml"),
])
def test_bad_config_files(tmp_path: Path, filename: str, content: str, message: str) -> None:
    (tmp_path / filename).write_text(content, encoding="utf-8")
    with pytest.raises(InvalidInput, match=message):
        options.read_config(tmp_path / filename)
    with pytest.raises(InvalidInput, match="no such config file"):
        options.read_config(tmp_path / "missing.toml")


def test_a_run_dumped_and_read_back_is_the_same_run(tmp_path: Path) -> None:
    trainer = get_trainer("rnn")
    run = RecurrentRun(data=[Path("reviews.tsv")], name="x", vectors=Path("models/w2v"), overwrite=True)
    params = RNNParams(cell="gru", dropout=0.25, bidirectional=False)
    path = tmp_path / "params.toml"
    path.write_text(trainer.config(run, params), encoding="utf-8")
    text = path.read_text(encoding="utf-8")
    assert "nlp-service train neural --config <this file>" in text  # how to use it, in its header
    assert "overwrite" not in tomllib.loads(text)  # about that invocation, not the model
    back = trainer.options(trainer.read_config(path))
    assert back[1] == params
    # A file written when the command was `train rnn` (the shipped defaults, older models) still loads.
    path.write_text(text.replace('command = "neural"', 'command = "rnn"'), encoding="utf-8")
    assert 'command = "rnn"' in path.read_text(encoding="utf-8")
    assert trainer.options(trainer.read_config(path))[1] == params
    assert back[0] == dataclasses.replace(run, data=[Path("reviews.tsv").resolve()],
                                          vectors=Path("models/w2v").resolve(), overwrite=False)


def test_a_config_for_another_command_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('command = "gpt2"\n', encoding="utf-8")
    with pytest.raises(InvalidInput, match="holds the options of `train gpt2`, not `train bow`"):
        get_trainer("bow").read_config(path)


@pytest.mark.parametrize("spec", DEFAULT_MODELS, ids=lambda s: s.name)
def test_shipped_default_configs_are_valid_runs(spec: object) -> None:
    """Each default model's config names an existing command and builds valid options (data files included; a
    path that is no file names a default model built before it, as sentiment-es's `vectors = "w2v-es"`)."""
    trainer = spec.trainer  # type: ignore[attr-defined]
    values = trainer.read_config(spec.path) | {"name": spec.name}  # type: ignore[attr-defined]
    built_before = [m.name for m in DEFAULT_MODELS[: DEFAULT_MODELS.index(spec)]]  # type: ignore[arg-type]
    groups = trainer.options(values)
    for group in groups:
        options.check(group)
        for value in options.values(group).values():
            for path in value if isinstance(value, list) else [value]:
                if isinstance(path, Path):
                    assert path.is_file() or path.name in built_before, path
    assert trainer.kind == read_manifest_kind(spec.name)


def read_manifest_kind(name: str) -> str:
    """The kind a default model's setting is about (default_vectors_model -> vectors, ...)."""
    setting = next(s.setting for s in DEFAULT_MODELS if s.name == name)
    kind = setting.removeprefix("default_").removesuffix("_model")
    return {"sentiment": "classifier"}.get(kind, kind)


# ---- the command line is derived from the declarations ------------------------------------------


def _click_options(path: tuple[str, ...]) -> dict[str, object]:
    cmd: object = typer.main.get_command(app)
    for part in path:
        cmd = cmd.commands[part]  # type: ignore[attr-defined]
    return {p.name: p for p in cmd.params}  # type: ignore[attr-defined]


@pytest.mark.parametrize("command", trainer_commands())
def test_every_option_of_every_trainer_is_on_the_command_line(command: str) -> None:
    params = _click_options(("train", command))
    assert {"config", "models_dir"} <= set(params)
    for group in get_trainer(command).groups:
        for spec in options.specs(group):
            p = params[spec.key]
            assert spec.meta.help.rstrip(".") in (p.help or ""), spec.key  # type: ignore[attr-defined]
            if not spec.required and not spec.is_sequence:
                assert p.default == spec.default, spec.key  # type: ignore[attr-defined]
            if isinstance(p, typer.core.TyperOption) and spec.base is bool:
                assert p.secondary_opts == [f"--no-{spec.key.replace('_', '-')}"]


def test_missing_required_option_is_a_usage_error(tmp_path: Path) -> None:
    r = invoke("train", "bow", str(tmp_path / "x.csv"), "--models-dir", str(tmp_path))
    assert r.exit_code == 2 and "missing option --name (or 'name' in a config file)" in r.stderr


def test_config_then_command_line_then_defaults(tmp_path: Path, sentiment_file: Path) -> None:
    """A YAML config sets the data and some options; the command line overrides one; the saved
    params.toml records the result; and `--config params.toml` repeats it exactly."""
    models = tmp_path / "models"
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "reviews.tsv").write_bytes(sentiment_file.read_bytes())
    (tmp_path / "bow.yaml").write_text("command: bow\nname: first\ndata: [data/reviews.tsv]\nfeatures: count\n"
                                       "classifier: nb\nngram_max: 3\ntask: sentiment\n", encoding="utf-8")
    r = invoke("train", "bow", "--config", str(tmp_path / "bow.yaml"), "--ngram-max", "1", "--models-dir", str(models))
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["model"] == str(models / "first")
    manifest = read_manifest(models / "first")
    bow = manifest.params["bow"]
    assert (bow["features"], bow["classifier"], bow["ngram_max"], bow["analyzer"]) == ("count", "nb", 1, "word")
    assert manifest.extra["task"] == "sentiment" and "params.toml" in manifest.files
    saved = tomllib.loads((models / "first" / "params.toml").read_text(encoding="utf-8"))
    assert saved["data"] == [str((tmp_path / "data" / "reviews.tsv").resolve())] and saved["ngram_max"] == 1

    r = invoke("train", "bow", "--config", str(models / "first" / "params.toml"), "--name", "again",
               "--models-dir", str(models))
    assert r.exit_code == 0, r.output
    again = read_manifest(models / "again")
    assert again.params == manifest.params and again.metrics["test"] == manifest.metrics["test"]
    repeated = tomllib.loads((models / "again" / "params.toml").read_text(encoding="utf-8"))
    assert repeated == {**saved, "name": "again"}


def test_config_errors_on_the_command_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('command = "bow"\nname = "x"\ndata = ["a.csv"]\nngram = 3\n', encoding="utf-8")
    r = invoke("train", "bow", "--config", str(bad), "--models-dir", str(tmp_path))
    assert r.exit_code == 1 and f"{bad}: unknown option 'ngram'" in r.stderr and "ngram_max" in r.stderr
    r = invoke("train", "rnn", "--config", str(bad), "--models-dir", str(tmp_path))
    assert r.exit_code == 1 and "holds the options of `train bow`, not `train neural`" in r.stderr


def test_trained_models_save_their_run(rnn_model: Path, w2v_model: Path, translator_model: Path) -> None:
    for path, command in ((rnn_model, "neural"), (w2v_model, "word2vec"), (translator_model, "translator")):
        saved = tomllib.loads((path / "params.toml").read_text(encoding="utf-8"))
        assert saved["command"] == command and saved["name"] == path.name
        assert "params.toml" in read_manifest(path).files
        trainer = get_trainer(command)
        trainer.options(trainer.read_config(path / "params.toml"))  # builds: a valid run
    run = get_trainer("rnn").options(get_trainer("rnn").read_config(rnn_model / "params.toml"))
    assert dataclasses.asdict(run[1]) == read_manifest(rnn_model).params["rnn"]


def test_settings_name_the_default_models() -> None:
    defaults = {s.name for s in DEFAULT_MODELS}
    assert defaults == {Settings.model_fields[f].default for f in Settings.model_fields
                        if f.startswith("default_") and f.endswith("_model")}
    assert BowRun.__dataclass_fields__["name"].default is dataclasses.MISSING


def test_every_setting_is_documented_in_the_readme() -> None:
    """The README's tables are what operators read: a setting missing there does not exist for them."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    missing = [f"NLP_{name.upper()}" for name in Settings.model_fields if f"NLP_{name.upper()}" not in readme]
    assert not missing, f"settings not in README.md: {missing}"
