"""What every training command shares: its description (:class:`Trainer`), the resumable-run
protocol of the neural training loops (:class:`ResumableRun`), and the training-curve picture.

A :class:`Trainer` is found by name through :func:`nlp_service.registry.get_trainer`; the command
line builds ``nlp-service train <command>`` from its option groups, and the default models are
built through it from the config files shipped in :mod:`nlp_service.defaults`.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import MISSING, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import options as opts
from .errors import InvalidInput

if TYPE_CHECKING:
    import torch

    from .config import Settings

log = logging.getLogger(__name__)


# ---- training commands ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Trainer:
    """A training command: option groups (dataclasses of :func:`~nlp_service.options.option` fields)
    and ``train(*groups, settings=..., progress=...) -> (model folder, metrics)``, which trains, tests
    and saves one model (with its run as ``params.toml``)."""

    command: str  # nlp-service train <command>
    kind: str  # the model kind it makes
    summary: str  # the first line of its --help
    groups: tuple[type, ...]
    train: Callable[..., tuple[Path, dict[str, Any]]]
    report: Callable[[dict[str, Any]], dict[str, Any]]  # what the command line prints of the metrics
    aliases: tuple[str, ...] = ()  # older names of the command: they run it, and their config files load

    def options(self, given: dict[str, Any], *, where: str = "") -> list[Any]:
        """One instance per group from option values (unknown names are an error)."""
        return [opts.build(group, values, where=where)
                for group, values in zip(self.groups, opts.split(self.groups, given, where=where), strict=True)]

    def read_config(self, path: Path) -> dict[str, Any]:
        """The option values of a config file written for this command, each converted to its type
        (relative paths are taken from the file's folder)."""
        raw = opts.read_config(path)
        written_for = raw.get("command")
        if written_for is not None and written_for not in (self.command, *self.aliases):
            raise InvalidInput(f"{path} holds the options of `train {written_for}`, not `train {self.command}`")
        where = f"{path}: "
        values: dict[str, Any] = {}
        for group, part in zip(self.groups, opts.split(self.groups, raw, where=where), strict=True):
            values.update(opts.convert_values(group, part, base_dir=Path(path).parent, where=where))
        return values

    def config(self, *groups: Any) -> str:
        """The run as a config file: every option of every group, ready for ``--config``."""
        merged: dict[str, Any] = {}
        for group in groups:
            merged.update(opts.values(group, saved_only=True))
        return opts.dump_config(self.command, merged, comment=(
            f"nlp-service train {self.command}: the options of this run. Repeat it with\n"
            f"  nlp-service train {self.command} --config <this file>\n"
            "(options given on the command line override these)."))


def start_run(settings: Settings | None, *groups: Any) -> Settings:
    """Check a run's option groups before any work is done (bounds and choices, and the rules a group's
    own ``validate()`` adds) and return the settings it runs with (the environment's unless given)."""
    from .config import get_settings

    opts.check_groups(*groups)
    return settings or get_settings()


# Options that several training commands share, each declared once here.


def name_option(default: Any = MISSING, default_help: str | None = None) -> Any:
    return opts.option(default, "Model name (folder under the models dir).", default_help=default_help)


OVERWRITE_HELP = "Replace an existing model of that name."


def overwrite_option() -> Any:
    return opts.option(False, OVERWRITE_HELP, saved=False)


def device_option() -> Any:
    return opts.option(None, "Where to train: cpu, cuda or auto.", default_help="NLP_DEVICE")


def clip_norm_option() -> Any:
    return opts.option(1.0, "Gradient clipping: largest gradient norm.", above=0)


def max_minutes_option() -> Any:
    return opts.option(None, "Stop training after this many minutes.", above=0)


# ---- resumable runs ---------------------------------------------------------------------------------

_CHECKPOINT = "checkpoint.pt"
_CHECKPOINT_FORMAT = 2


def run_folder(root: Path | None, name: str, identity: dict[str, Any]) -> Path | None:
    """The checkpoint folder of a run: the same model name and ``identity`` (the settings that change
    a run's course, the data's fingerprint) give the same folder, so a restarted run finds it."""
    if root is None:
        return None
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return Path(root) / f"{name}-{digest}"


@dataclass
class Progress:
    """What a training loop needs to continue where it stopped (besides weights and optimizer)."""

    done: int = 0  # epochs or steps completed
    seconds: float = 0.0  # training time spent, earlier sessions included
    history: list[dict[str, Any]] = field(default_factory=list)
    best_score: float | None = None
    best_at: int = 0  # the epoch (or step) of the best score
    best_weights: dict[str, Any] | None = None
    extra: dict[str, float] = field(default_factory=dict)  # a loop's own running values


class ResumableRun:
    """One training run that survives being interrupted.

    With a ``folder``, :meth:`checkpoint` saves the model, the optimizer, the gradient scaler, the
    torch RNG and :attr:`progress` (atomically); a run started again with the same folder resumes
    from it, with the same batches, dropout masks and learning rate as an uninterrupted run (when the
    loop draws its batch order from its seed and the epoch). :meth:`finish` deletes the checkpoint
    once the model is saved. Without a folder nothing is written and nothing resumes.
    """

    def __init__(self, folder: Path | None, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 scaler: torch.amp.GradScaler, device: torch.device) -> None:
        self.folder = folder
        self.model, self.optimizer, self.scaler, self.device = model, optimizer, scaler, device
        self.progress = self._restore()
        self.resumed_from = self.progress.done
        self._clock = time.perf_counter()

    @property
    def path(self) -> Path | None:
        return self.folder / _CHECKPOINT if self.folder is not None else None

    def _restore(self) -> Progress:
        from .torch_utils import read_checkpoint, restore_training_state

        if self.path is None or not self.path.is_file():
            return Progress()
        state = read_checkpoint(self.path, self.device)
        if state.get("format") != _CHECKPOINT_FORMAT:  # checked before anything is put back in place
            log.warning("%s was written by another version: starting this run over", self.path)
            return Progress()
        restore_training_state(state, self.model, self.optimizer, self.scaler)
        return Progress(done=int(state["done"]), seconds=float(state["seconds"]), history=json.loads(state["history"]),
                        best_score=state["best_score"], best_at=int(state["best_at"]),
                        best_weights=state["best_weights"], extra=json.loads(state["extra"]))

    @property
    def elapsed(self) -> float:
        """Seconds of training so far, earlier sessions included."""
        return self.progress.seconds + time.perf_counter() - self._clock

    def over_budget(self, max_minutes: float | None) -> bool:
        return max_minutes is not None and self.elapsed > max_minutes * 60

    @property
    def since_best(self) -> int:
        """Epochs (or steps) completed since the best score: early stopping's count."""
        return self.progress.done - self.progress.best_at

    def improved(self, score: float) -> bool:
        """Record the score of the epoch just completed; keep a copy of the weights when it is the best."""
        p = self.progress
        if p.best_score is not None and score <= p.best_score:
            return False
        p.best_score, p.best_at = score, p.done
        p.best_weights = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
        return True

    def checkpoint(self) -> None:
        from .torch_utils import save_checkpoint

        if self.path is None:
            return
        import torch

        p = self.progress
        save_checkpoint(self.path, {
            "format": _CHECKPOINT_FORMAT, "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(), "torch_rng": torch.get_rng_state(), "done": p.done,
            "seconds": self.elapsed, "history": json.dumps(p.history), "best_score": p.best_score,
            "best_at": p.best_at, "best_weights": p.best_weights, "extra": json.dumps(p.extra),
        })

    def restore_best(self) -> None:
        """Put the best weights back into the model (if a score was recorded)."""
        if self.progress.best_weights is not None:
            self.model.load_state_dict(self.progress.best_weights)

    def finish(self) -> None:
        """The model is saved: the checkpoint is spent (and no later call writes one again)."""
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None


# ---- pictures -----------------------------------------------------------------------------------

# The file a training run's curves are saved as, in its model folder (history_png draws it): what
# `nlp-service train` points to and GET /v1/models/{name}/curves serves.
TRAINING_CURVE = "training_curve.png"

# One panel: its y-axis label and the (history key, legend label) pairs it plots.
Panel = tuple[str, Sequence[tuple[str, str]]]


def history_png(history: list[dict[str, Any]], title: str, panels: Sequence[Panel], x: str = "epoch"
                ) -> bytes | None:
    """A PNG with one panel per ``panels`` entry, ``x`` (epoch, step) on the x axis; None for an empty history."""
    if not history:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [h[x] for h in history]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.5), squeeze=False)
    for ax, (ylabel, series) in zip(axes[0], panels, strict=True):
        for key, label in series:
            ax.plot(xs, [h[key] for h in history], marker="o", label=label)
        ax.set_xlabel(x)
        ax.set_ylabel(ylabel)
        if len(series) > 1:
            ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


__all__ = ["TRAINING_CURVE", "Panel", "Progress", "ResumableRun", "Trainer", "history_png", "run_folder",
           "start_run"]
