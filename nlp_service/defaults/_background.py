"""Building the missing default models while the service runs (``serve --build-defaults``, what
``make serve`` does): one ``nlp-service defaults --only NAME`` process per model, one after another in
build order, each at a lower CPU priority than the server.

A process, not a thread: training is CPU-bound and holds the GIL in places (tokenizing, the tokenizer's
Python loops), and requests must not queue behind it; a lower priority keeps the cores for requests
first. Its output (its progress bars) says which stage it is in; how far it has got is estimated from
the time it has taken against the measured build time; a line it starts with ``warning: `` (a pretrained
model built as the demo instead) is logged as a warning and shown with the build's progress. The service
learns of each model built, or failed, through two callbacks, and loads it without a restart.
"""

from __future__ import annotations

import codecs
import contextlib
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..config import Settings
    from . import DefaultModel

log = logging.getLogger("nlp_service.defaults")

# How a build process knows it is one: the server's process id (it exits when that process is gone).
PARENT_ENV = "_NLP_BUILD_PARENT_PID"
PROFILE_ENV = "NLP_DEFAULTS"  # the settings' profile, passed on: the server's may not come from the environment
# What a build process starts a line with to warn (its errors' lines start with "error: ", as every command's).
WARNING_PREFIX = "warning: "
NICENESS = 10
# A tqdm line: "desc:  42%|####  | 420/1000 [00:08<00:11, ...]" or, without a total, "desc: 1.2M words [00:03, ...]".
_BAR = re.compile(r"^\s*(?P<desc>[^:|\[\]\r\n]{1,80}?):\s+(?:(?P<pct>\d{1,3})%\||.*\[\d+:\d\d)")
_ERROR = re.compile(r"^(?:error: |[A-Za-z_][\w.]*(?:Error|Exception|Interrupt)\b:?)")


@dataclass
class _Build:
    name: str
    kind: str
    expected: float | None  # seconds, when known
    state: str = "waiting"  # waiting, building, built, failed
    started: float | None = None  # time.monotonic()
    seconds: float | None = None  # how long it took, once done
    stage: str | None = None
    stage_progress: float | None = None
    warning: str | None = None  # the build's warning line, if it printed one
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=40))


class BackgroundBuilds:
    """The default models ``specs`` (missing ones, in build order), built one after another by
    :meth:`start`; :meth:`status` says how far each has got, :meth:`stop` ends the build under way.
    The serving layer's ``ModelManager.build_in_background`` takes one."""

    def __init__(self, settings: Settings, specs: Sequence[DefaultModel], *, config_dir: Path | None = None) -> None:
        self.models_dir = Path(settings.models_dir).resolve()
        self.config_dir = Path(config_dir).resolve() if config_dir is not None else None
        self.profile = settings.defaults
        self._builds = {s.name: _Build(s.name, s.kind, s.expected_seconds(config_dir, self.profile)) for s in specs}
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()  # starting a process vs stop()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def planned(self) -> dict[str, str]:
        """The models it builds, in order, with their kinds."""
        return {b.name: b.kind for b in self._builds.values()}

    def start(self, built: Callable[[str], object], failed: Callable[[str, str], object]) -> None:
        """Build in a background thread; call ``built(name)`` once a model's folder is saved, ``failed(name,
        reason)`` when its build fails (the next one is built all the same)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, args=(built, failed), name="default-builds",
                                            daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """End the build under way (its partial save is removed at the next start) and build no more."""
        self._stopping.set()
        with self._lock:
            proc = self._proc
        if proc is not None and proc.poll() is None:
            _signal(proc, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                _signal(proc, getattr(signal, "SIGKILL", signal.SIGTERM))
                proc.wait(timeout=10)

    def status(self, name: str) -> dict[str, Any] | None:
        """How far the build of ``name`` has got (None when it is not waiting or building): ``state``,
        ``progress`` (0-1, an estimate: time taken against the expected time, else the stage's own),
        ``stage`` (what its progress bar says it does), ``elapsed_seconds``, ``expected_seconds``,
        ``remaining_seconds`` (an estimate, waiting for the builds before it included), while waiting ``after``
        (the builds before it), and ``warning`` once the build has printed one (building the demo instead of a
        pretrained model that could not be had: why, and how to retry)."""
        build = self._builds.get(name)
        if build is None or build.state not in ("waiting", "building"):
            return None
        now = time.monotonic()
        ahead = []
        remaining: float | None = 0.0
        for other in self._builds.values():
            if other is build:
                break
            if other.state in ("waiting", "building"):
                ahead.append(other.name)
                left = self._remaining(other, now)
                remaining = None if remaining is None or left is None else remaining + left
        own = self._remaining(build, now)
        remaining = None if remaining is None or own is None else remaining + own
        elapsed = now - build.started if build.started is not None else 0.0
        if build.state == "waiting":
            progress: float | None = 0.0
        elif build.expected:
            progress = min(elapsed / build.expected, 0.99)
        else:
            progress = build.stage_progress
        out: dict[str, Any] = {
            "state": build.state, "progress": None if progress is None else round(progress, 2),
            "stage": build.stage, "elapsed_seconds": round(elapsed, 1), "expected_seconds": build.expected,
            "remaining_seconds": None if remaining is None else round(remaining),
        }
        if ahead:
            out["after"] = ahead
        if build.warning is not None:
            out["warning"] = build.warning
        return out

    @staticmethod
    def _remaining(build: _Build, now: float) -> float | None:
        if build.expected is None:
            return None
        if build.started is None:
            return build.expected
        return max(build.expected - (now - build.started), 1.0)  # late: a little longer, not "done"

    # ---- the builds ---------------------------------------------------------------------------------

    def _run(self, built: Callable[[str], object], failed: Callable[[str, str], object]) -> None:
        total = len(self._builds)
        for i, build in enumerate(self._builds.values(), 1):
            if self._stopping.is_set():
                return
            about = f", about {build.expected:.0f} s" if build.expected else ""
            log.info("building default model %s in the background (%d of %d, %s profile%s)", build.name, i, total,
                     self.profile, about)
            try:
                reason = self._build(build)
            except Exception as exc:  # could not even start the process
                reason = f"{exc.__class__.__name__}: {exc}"
            if self._stopping.is_set():  # stopped: the service is closing, nothing to report
                return
            build.seconds = round(time.monotonic() - (build.started or time.monotonic()), 1)
            try:
                if reason is None:
                    log.info("built default model %s in %.1f s", build.name, build.seconds)
                    built(build.name)
                else:
                    log.error("building default model %s failed after %.1f s: %s\n%s", build.name, build.seconds,
                              reason, "\n".join(build.tail))
                    failed(build.name, reason)
            except Exception:
                log.exception("the service could not take default model %s", build.name)
            finally:
                build.state = "built" if reason is None else "failed"  # after the service knows of it

    def _build(self, build: _Build) -> str | None:
        """Run one build process to its end; None when it succeeded, else why not."""
        cmd = [sys.executable, "-m", "nlp_service", "defaults", "--only", build.name,
               "--models-dir", str(self.models_dir)]
        if self.config_dir is not None:
            cmd += ["--defaults-dir", str(self.config_dir)]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", PARENT_ENV: str(os.getpid()), PROFILE_ENV: self.profile}
        with self._lock:
            if self._stopping.is_set():
                return "stopped"
            build.started, build.state, build.stage = time.monotonic(), "building", "starting"
            # Its own session: a Ctrl-C in the terminal stops the server, which then stops the build.
            self._proc = proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                                 stderr=subprocess.STDOUT, env=env, start_new_session=True)
        assert proc.stdout is not None
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pending = ""
        while chunk := proc.stdout.read1(65536):
            pending += decoder.decode(chunk)
            *pieces, pending = re.split(r"(?<=[\r\n])", pending)
            for piece in pieces:
                self._read(build, piece)
        if pending:
            self._read(build, pending + "\n")
        code = proc.wait()
        with self._lock:
            self._proc = None
        if code == 0:
            return None
        errors = [line for line in build.tail if _ERROR.match(line)]
        why = errors[-1].removeprefix("error: ") if errors else (build.tail[-1] if build.tail else "no output")
        return f"its build process exited with code {code}: {why}"

    def _read(self, build: _Build, piece: str) -> None:
        text = piece.strip()
        if not text:
            return
        line = piece.endswith("\n")  # a whole line, not a progress bar's refresh
        bar = None if line and text.startswith(WARNING_PREFIX) else _BAR.match(text)
        if bar:
            build.stage = bar["desc"].strip()
            build.stage_progress = int(bar["pct"]) / 100 if bar["pct"] is not None else None
        elif line:  # kept for the log and the reason
            build.tail.append(text)
            if text.startswith(WARNING_PREFIX):
                build.warning = text.removeprefix(WARNING_PREFIX)
                log.warning("[%s] %s", build.name, text)
            else:
                log.info("[%s] %s", build.name, text)


def _signal(proc: subprocess.Popen[bytes], sig: int) -> None:
    """Signal the build and the processes it started (its tokenizer's workers): its own process group."""
    try:
        os.killpg(proc.pid, sig)
    except (AttributeError, OSError):  # no process groups (Windows), or gone meanwhile
        proc.send_signal(sig)


def run_as_background_build() -> None:
    """In a build process that a server started: yield the cores to the server (a lower priority) and
    exit when the server is gone (killed without stopping its build). No effect elsewhere."""
    parent = os.environ.get(PARENT_ENV)
    if not parent:
        return
    if hasattr(os, "nice"):
        with contextlib.suppress(OSError):
            os.nice(NICENESS)

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if str(os.getppid()) != parent:
                os._exit(1)

    threading.Thread(target=watch, name="exit-with-server", daemon=True).start()


__all__ = ["NICENESS", "PARENT_ENV", "PROFILE_ENV", "WARNING_PREFIX", "BackgroundBuilds", "run_as_background_build"]
