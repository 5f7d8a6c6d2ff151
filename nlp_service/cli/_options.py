"""Commands whose options are derived from option dataclasses (:mod:`nlp_service.options`): each field
becomes an option with its name, type, default, bounds and help, so a parameter is declared once, in
the library. With ``--config FILE`` the values come from a config file (a model's ``params.toml``),
and options given on the command line override them."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from .. import options as opts
from ._app import ModelsDir, user_errors

ConfigOption = Annotated[Path | None, typer.Option(
    "--config", help="Take the options from this TOML or YAML file (a model's params.toml repeats its run); "
    "options given here override it.")]

# A command's body: the option groups' instances (in order) and the models folder.
Body = Callable[[list[Any], Path | None], None]


def _help(spec: opts.OptionSpec) -> str:
    text = spec.meta.help
    if spec.meta.default_help:
        text = f"{text.rstrip('.')} (default: {spec.meta.default_help})."
    if spec.required:
        text += " [required]"
    return text


def _annotation(spec: opts.OptionSpec) -> Any:
    """The type Typer parses: a list for a sequence (Typer takes no list of choices: those are checked
    when the options are built), ``X | None`` where the option may be left unset."""
    if spec.is_sequence:
        item = spec.item if typing.get_origin(spec.item) is not typing.Literal else str
        tp: Any = list[item]  # type: ignore[valid-type]
    else:
        tp = spec.base
    if spec.optional or spec.required or spec.default is None or spec.is_sequence:
        tp = tp | None
    info: Any
    if spec.meta.argument:
        info = typer.Argument(help=_help(spec), show_default=False)
    else:
        bounds = {k: v for k, v in (("min", spec.meta.min), ("max", spec.meta.max)) if v is not None}
        if spec.base not in (int, float):
            bounds = {}
        info = typer.Option(help=_help(spec), **bounds)
    return Annotated[tp, info]


@contextmanager
def _usage_errors() -> Iterator[None]:
    """A required option left out, or a value out of its bounds, is a usage error (exit code 2), as Click
    reports its own; found before any work starts."""
    try:
        yield
    except ValueError as exc:  # InvalidInput included
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None


def _parameter(spec: opts.OptionSpec) -> inspect.Parameter:
    default = None if spec.required or spec.is_sequence else spec.default
    return inspect.Parameter(spec.key, inspect.Parameter.KEYWORD_ONLY, annotation=_annotation(spec), default=default)


def derived_command(group: typer.Typer, name: str, *, groups: Sequence[type], body: Body, help: str,
                    read_config: Callable[[Path], dict[str, Any]] | None = None) -> None:
    """Add command ``name`` to ``group``: an option per field of ``groups``, ``--models-dir``, and with
    ``read_config`` (a config file's option values, converted), ``--config``."""
    params = [inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)]
    keys: set[str] = set()
    for cls in groups:
        for spec in opts.specs(cls):
            if spec.key in keys:
                raise TypeError(f"{name}: option {spec.key!r} is declared twice")
            keys.add(spec.key)
            params.append(_parameter(spec))
    if read_config is not None:
        params.append(inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, annotation=ConfigOption,
                                        default=None))
    params.append(inspect.Parameter("models_dir", inspect.Parameter.KEYWORD_ONLY, annotation=ModelsDir, default=None))

    def command(ctx: typer.Context, **kwargs: Any) -> None:
        models_dir = kwargs.pop("models_dir")
        config_file = kwargs.pop("config", None)
        values: dict[str, Any] = {}
        if config_file is not None and read_config is not None:
            with user_errors():
                values.update(read_config(Path(config_file)))
        # Given on the command line: over the config file. Left out: the file's value, else the default.
        values.update({k: v for k, v in kwargs.items() if ctx.get_parameter_source(k).name == "COMMANDLINE"})
        with _usage_errors():
            parts = opts.split(groups, values)
            instances = [opts.build(cls, part) for cls, part in zip(groups, parts, strict=True)]
            opts.check_groups(*instances)
        body(instances, models_dir)

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__doc__ = help
    group.command(name, help=help)(command)
