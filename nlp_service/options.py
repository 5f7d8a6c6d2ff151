"""Options declared once.

A run's options are dataclass fields made with :func:`option`: the field holds the default, the help
text and the bounds, and everything else is derived from it: the command line (``nlp-service train``
builds its options from the fields), config files (``--config``: TOML or YAML; every trained model
saves its whole run as ``params.toml``, so ``nlp-service train neural --config models/x/params.toml``
repeats it), and the checks (:func:`check`). Adding a parameter is adding a field.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import MISSING, dataclass
from pathlib import Path
from typing import Any

from .errors import InvalidInput

_KEY = "nlp_service.option"
CONFIG_FILE = "params.toml"
# Keys of a config file that describe it rather than set an option.
META_KEYS = ("command", "description")


class MissingOption(InvalidInput):
    """A required option was given neither on the command line nor in a config file."""


@dataclass(frozen=True)
class _Meta:
    help: str
    flag: str | None
    min: float | None
    max: float | None
    above: float | None
    below: float | None
    argument: bool
    saved: bool
    default_help: str | None


def option(default: Any = MISSING, help: str = "", *, default_factory: Callable[[], Any] | Any = MISSING,
           flag: str | None = None, min: float | None = None, max: float | None = None,
           above: float | None = None, below: float | None = None, argument: bool = False, saved: bool = True,
           default_help: str | None = None) -> Any:
    """A dataclass field that is also an option.

    ``min``/``max`` are inclusive bounds, ``above``/``below`` exclusive ones. ``flag`` names the
    command-line option when it is not ``--field-name``; ``argument`` makes it positional;
    ``saved=False`` keeps it out of the config file a run saves (it is about this invocation, not the
    model). ``default_help`` says what an unset value (``None`` or a computed default) means, e.g.
    "all cores". An option that may be ``None`` has ``None`` as its default, so a config file that
    leaves it out (TOML has no null) means the same thing.
    """
    meta = _Meta(help, flag, min, max, above, below, argument, saved, default_help)
    if default_factory is not MISSING:
        return dataclasses.field(default_factory=default_factory, metadata={_KEY: meta})
    return dataclasses.field(default=default, metadata={_KEY: meta})


@dataclass(frozen=True)
class OptionSpec:
    """One option as the rest of the package sees it."""

    name: str
    annotation: Any  # resolved type hint
    default: Any  # MISSING when required; None for a computed default (default_factory)
    meta: _Meta

    @property
    def required(self) -> bool:
        return self.default is MISSING

    @property
    def optional(self) -> bool:
        """``None`` is a valid value (``X | None``)."""
        return _is_union(self.annotation) and type(None) in typing.get_args(self.annotation)

    @property
    def base(self) -> Any:
        """The type without ``| None``."""
        if _is_union(self.annotation):
            args = [a for a in typing.get_args(self.annotation) if a is not type(None)]
            return args[0] if len(args) == 1 else self.annotation
        return self.annotation

    @property
    def item(self) -> Any:
        """The element type of a list or tuple option, else the base type."""
        if typing.get_origin(self.base) in (list, tuple):
            return typing.get_args(self.base)[0]
        return self.base

    @property
    def is_sequence(self) -> bool:
        return typing.get_origin(self.base) in (list, tuple)

    @property
    def choices(self) -> tuple[Any, ...] | None:
        return typing.get_args(self.item) if typing.get_origin(self.item) is typing.Literal else None

    @property
    def flag(self) -> str:
        return self.meta.flag or "--" + self.name.replace("_", "-")

    @property
    def key(self) -> str:
        """The option's name on the command line and in config files: its flag in snake case."""
        return self.flag.removeprefix("--").replace("-", "_")


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


@functools.cache
def specs(cls: type) -> tuple[OptionSpec, ...]:
    """The options of a dataclass, in field order (fields made without :func:`option` are not options)."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        meta = f.metadata.get(_KEY)
        if meta is None or not f.init:
            continue
        if f.default is not MISSING:
            default = f.default
        elif f.default_factory is not MISSING:
            default = None
        else:
            default = MISSING
        spec = OptionSpec(f.name, hints[f.name], default, meta)
        if spec.optional and default not in (None, MISSING):
            raise TypeError(f"{cls.__name__}.{f.name}: an option that may be None must default to None "
                            "(a config file cannot say None: leaving the option out must mean it)")
        out.append(spec)
    return tuple(out)


def default_of(cls: type, name: str) -> Any:
    """The default of option ``name`` of ``cls`` (for surfaces that restate it, such as API schemas)."""
    for spec in specs(cls):
        if spec.name == name:
            return spec.default
    raise KeyError(f"{cls.__name__} has no option {name!r}")


def check(obj: Any) -> None:
    """Raise :class:`InvalidInput` for the first option of ``obj`` outside its choices or bounds."""
    for spec in specs(type(obj)):
        value = getattr(obj, spec.name)
        if value is None:
            continue
        values = value if spec.is_sequence else [value]
        for item in values:
            _check_one(spec, item)


def check_groups(*groups: Any) -> None:
    """:func:`check` each option group, then the rules its own ``validate()`` adds (cross-field ones)."""
    for group in groups:
        check(group)
        own_rules = getattr(group, "validate", None)
        if own_rules is not None:
            own_rules()


def bounds(cls: type, name: str) -> dict[str, float]:
    """Option ``name``'s bounds in pydantic's words (``ge``, ``le``, ``gt``, ``lt``), for surfaces that
    validate it themselves, such as an HTTP schema."""
    spec = next(s for s in specs(cls) if s.name == name)
    cast = float if spec.base is float else int
    out = {"ge": spec.meta.min, "le": spec.meta.max, "gt": spec.meta.above, "lt": spec.meta.below}
    return {k: cast(v) for k, v in out.items() if v is not None}


def _check_one(spec: OptionSpec, value: Any) -> None:
    name, m = spec.name, spec.meta
    if spec.choices is not None and value not in spec.choices:
        raise InvalidInput(f"{name} must be one of {', '.join(map(str, spec.choices))}, not {value!r}")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return
    if m.min is not None and value < m.min:
        raise InvalidInput(f"{name} must be at least {m.min:g}")
    if m.max is not None and value > m.max:
        raise InvalidInput(f"{name} must be at most {m.max:g}")
    if m.above is not None and not value > m.above:
        raise InvalidInput(f"{name} must be positive" if m.above == 0 else f"{name} must be greater than {m.above:g}")
    if m.below is not None and not value < m.below:
        raise InvalidInput(f"{name} must be less than {m.below:g}")


def values(obj: Any, *, saved_only: bool = False) -> dict[str, Any]:
    """The options of ``obj`` by key (command-line and config-file name), as set; with ``saved_only``,
    those a saved run keeps."""
    return {spec.key: getattr(obj, spec.name) for spec in specs(type(obj)) if spec.meta.saved or not saved_only}


def build(cls: type, given: Mapping[str, Any], *, base_dir: Path | None = None, where: str = "") -> Any:
    """An instance of ``cls`` from option values (a config file's or the command line's), each
    converted to its field's type; relative paths are taken from ``base_dir`` when given. Options
    not given (or given as ``None`` where ``None`` is not a value) keep their defaults; a required
    one missing (or an empty list) is an error."""
    kwargs: dict[str, Any] = {}
    for spec in specs(cls):
        value = given.get(spec.key)
        if spec.required and spec.is_sequence and value is not None and not value:
            value = None
        if value is not None or (spec.key in given and spec.optional):
            kwargs[spec.name] = _convert(spec, value, base_dir, where)
        elif spec.required:
            what = spec.key.upper() if spec.meta.argument else f"option {spec.flag}"
            raise MissingOption(f"{where}missing {what} (or {spec.key!r} in a config file)")
    return cls(**kwargs)


def convert_values(cls: type, given: Mapping[str, Any], *, base_dir: Path | None = None, where: str = ""
                   ) -> dict[str, Any]:
    """``given`` (keyed by option key) with each value converted to its option's type, relative paths
    taken from ``base_dir``; keys that are not options of ``cls`` are left out."""
    return {spec.key: _convert(spec, given[spec.key], base_dir, where) for spec in specs(cls) if spec.key in given}


def _convert(spec: OptionSpec, value: Any, base_dir: Path | None, where: str) -> Any:
    if value is None:
        return None
    if spec.is_sequence:
        items = value if isinstance(value, list | tuple) else [value]
        converted = [_convert_item(spec, spec.item, v, base_dir, where) for v in items]
        return tuple(converted) if typing.get_origin(spec.base) is tuple else converted
    return _convert_item(spec, spec.base, value, base_dir, where)


def _convert_item(spec: OptionSpec, tp: Any, value: Any, base_dir: Path | None, where: str) -> Any:
    def wrong(expected: str) -> InvalidInput:
        return InvalidInput(f"{where}{spec.key}: expected {expected}, got {value!r}")

    if tp is Path:
        if not isinstance(value, str | os.PathLike):
            raise wrong("a path")
        path = Path(value).expanduser()
        return base_dir / path if base_dir is not None and not path.is_absolute() else path
    if tp is bool:
        if not isinstance(value, bool):
            raise wrong("true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong("a whole number")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise wrong("a number")
        return float(value)
    if tp is str or typing.get_origin(tp) is typing.Literal:
        if not isinstance(value, str):
            raise wrong("text")
        return value
    return value


def split(groups: Sequence[type], given: Mapping[str, Any], *, where: str = "") -> list[dict[str, Any]]:
    """``given`` cut into one mapping per option group; a key that no group has is an error."""
    names = [{s.key for s in specs(g)} for g in groups]
    unknown = sorted(set(given) - set().union(*names) - set(META_KEYS))
    if unknown:
        known = sorted(set().union(*names))
        raise InvalidInput(f"{where}unknown option{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
                           f"(known: {', '.join(known)})")
    return [{k: v for k, v in given.items() if k in group} for group in names]


def fingerprint(obj: Any, exclude: Iterable[str] = ()) -> str:
    """A short hash of the options of ``obj`` except ``exclude``: the same options give the same hash."""
    skip = set(exclude)
    fields = {s.name: getattr(obj, s.name) for s in specs(type(obj)) if s.name not in skip}
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:12]


# ---- config files -------------------------------------------------------------------------------


def read_config(path: Path) -> dict[str, Any]:
    """Option values from a TOML (``.toml``) or YAML (``.yaml``/``.yml``) file: one key per option."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"no such config file: {path}")
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".yaml", ".yml"):
        raise InvalidInput(f"{path}: a config file is .toml, .yaml or .yml")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read {path}: {exc}") from exc
    if suffix == ".toml":
        import tomllib

        try:
            raw: Any = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise InvalidInput(f"cannot read {path}: {exc}") from exc
    else:
        import yaml

        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InvalidInput(f"cannot read {path}: {exc}") from exc
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InvalidInput(f"{path}: expected option = value pairs at the top level")
    nested = sorted(k for k, v in raw.items() if isinstance(v, dict))
    if nested:
        raise InvalidInput(f"{path}: options are top-level keys; {', '.join(nested)} is a table")
    return raw


def dump_config(command: str, options: Mapping[str, Any], *, comment: str = "") -> str:
    """``options`` as TOML headed by ``command`` and a ``comment``. ``None`` values are left out (they
    mean the default); paths are made absolute, so the file works from any folder."""
    import tomli_w

    def absolute(value: Any) -> Any:
        if isinstance(value, Path):
            return str(value.resolve())
        if isinstance(value, list | tuple):
            return [absolute(v) for v in value]
        return value

    body = {"command": command, **{k: absolute(v) for k, v in options.items() if v is not None}}
    header = "".join(f"# {line}\n" if line else "#\n" for line in comment.splitlines())
    return header + tomli_w.dumps(body)


__all__ = ["CONFIG_FILE", "MissingOption", "OptionSpec", "bounds", "build", "check", "check_groups", "convert_values",
           "default_of", "dump_config", "fingerprint", "option", "read_config", "specs", "split", "values"]
