"""Pretrained models from the Hugging Face Hub: what ``convert``, ``import-marian``, ``import-generator`` and
the ``pretrained`` default models read when given ``owner/name`` (``owner/name@revision`` pins a branch, tag
or commit) instead of a local path.

Only the files a model needs are downloaded (a fastText repository's ``model.bin``; a transformers
checkpoint's config, tokenizer and one copy of its weights), into huggingface_hub's own cache, which it
configures from its environment: ``HF_HOME`` / ``HF_HUB_CACHE`` (where), ``HF_TOKEN`` (gated or private
repositories), ``HF_ENDPOINT`` (a mirror), ``HF_HUB_OFFLINE=1`` (the cache only). When the Hub cannot be
reached, a model already in the cache is used; otherwise the error says so at once (the first request to
the Hub waits at most ``HF_HUB_ETAG_TIMEOUT`` seconds, 10 by default). A model imported from the Hub records
the repository and the commit it came from (:attr:`ModelFiles.provenance`), so it can be fetched again
exactly.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .artifacts import ArtifactError
from .data import DataError
from .errors import InvalidInput

log = logging.getLogger(__name__)

_DEFAULT_REVISION = "main"  # huggingface_hub's, recorded in the manifest when none is given
# owner/name, optionally @revision (a branch, tag or commit). One slash exactly: a bare name could be a local
# file, and deeper paths are folders.
_HUB_NAME = re.compile(r"(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)(?:@(?P<revision>[^\s@]+))?")

# A transformers checkpoint as ``save_pretrained`` writes it: what loading needs, never the other frameworks'
# weights (TensorFlow, Flax, Rust, ONNX) that many repositories also hold.
_CHECKPOINT_CONFIG = "config.json"
_CHECKPOINT_FILES = (_CHECKPOINT_CONFIG, "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                     "special_tokens_map.json", "added_tokens.json", "vocab.json", "merges.txt", "*.spm",
                     "spiece.model", "sentencepiece.bpe.model", "vocab.txt")
# One copy of the weights, in order of preference: safetensors, else PyTorch's pickle format (older repositories).
_WEIGHTS = (("model.safetensors", "model.safetensors.index.json", "model-*-of-*.safetensors"),
            ("pytorch_model.bin", "pytorch_model.bin.index.json", "pytorch_model-*-of-*.bin"))
_WEIGHT_FILES = tuple(name for group in _WEIGHTS for name in group if "*" not in name)  # one is always there
_WEIGHTS_NAMED = f"weights ({' or '.join(group[0] for group in _WEIGHTS)})"


class HubError(DataError):
    """A model could not be had from the Hugging Face Hub (the ``pretrained`` defaults then build the demo).
    ``details``: ``repo_id``, ``revision``, ``reason`` (why, in a few words without local paths)."""

    code = "hub_error"


class HubUnavailable(HubError):
    """The Hub cannot be reached (offline, ``HF_HUB_OFFLINE``, a network failure) and the model is not in the cache."""

    code = "hub_unavailable"


class HubNotFound(HubError):
    """No such repository, revision or file on the Hub."""

    code = "hub_not_found"


class HubAccessDenied(HubError):
    """A gated or private repository, and no token (``HF_TOKEN``) with access to it."""

    code = "hub_access_denied"


class MissingModelFiles(ArtifactError):
    """A local model folder that does not exist or lacks files that loading needs."""

    code = "missing_model_files"


@dataclass(frozen=True)
class ModelFiles:
    """Where a pretrained model's files are: a local path as given, or a snapshot in the Hub cache."""

    path: Path  # the folder (a checkpoint) or the file (vectors) to read
    repo_id: str | None = None  # None: a local path
    revision: str | None = None  # as asked: a branch, tag or commit
    commit: str | None = None  # the commit it resolved to

    @property
    def provenance(self) -> dict[str, Any]:
        """What a model's manifest records as its ``data``: ``source`` (``owner/name@commit`` for a Hub model,
        which given back fetches the same files) and, for a Hub model, ``hub`` (repository, revision, commit)."""
        if self.repo_id is None:
            return {"source": str(self.path)}
        return {"source": f"{self.repo_id}@{self.commit}",
                "hub": {"repo_id": self.repo_id, "revision": self.revision, "commit": self.commit}}


def parse_hub_name(source: str | Path) -> tuple[str, str | None] | None:
    """``(repo_id, revision or None)`` when ``source`` names a Hub repository (``owner/name[@revision]``) rather
    than a local path: a :class:`~pathlib.Path`, or a string naming something that exists, is local."""
    if isinstance(source, Path) or Path(source).expanduser().exists():
        return None
    match = _HUB_NAME.fullmatch(source)
    return (match["repo"], match["revision"]) if match else None


def checkpoint_files(source: str | Path, *, revision: str | None = None, what: str = "a model") -> ModelFiles:
    """A transformers checkpoint (``save_pretrained`` folder): ``source`` itself when local (checked for its
    config and weights), else its snapshot in the Hub cache, downloaded when missing. ``what`` names the model
    in error messages ("a Marian model")."""
    hub = _hub_source(source, revision)
    if hub is None:
        folder = Path(source).expanduser()
        _require_checkpoint(folder, f"cannot load {what} from {str(source)!r}")
        return ModelFiles(folder)
    repo = _Repo(*hub, what=what)
    folder = repo.download((*_CHECKPOINT_FILES, *_WEIGHTS[0]))
    if not _has_weights(folder):  # an older repository: PyTorch's format, from the same commit
        folder = repo.download(_WEIGHTS[1], revision=folder.name)
    lacking = _checkpoint_lacks(folder)
    if lacking:
        raise repo.missing(folder, lacking)
    return repo.files(folder)


def model_file(source: str | Path, filename: str, *, revision: str | None = None, what: str = "a model"
               ) -> ModelFiles:
    """One file: ``source`` itself when local (not checked: its reader says what is wrong with it), else the
    file ``filename`` of the Hub repository ``source``, from the cache, downloaded when missing."""
    hub = _hub_source(source, revision)
    if hub is None:
        return ModelFiles(Path(source).expanduser())
    repo = _Repo(*hub, what=what)
    folder = repo.download([filename])
    if not (folder / filename).is_file():
        raise repo.missing(folder, filename)
    return repo.files(folder / filename)


# ---- the Hub ------------------------------------------------------------------------------------------


def _hub_source(source: str | Path, revision: str | None) -> tuple[str, str] | None:
    """(repo_id, revision) for a Hub name, None for a local path; a revision two ways must agree."""
    parsed = parse_hub_name(source)
    if parsed is None:
        if revision is not None:
            raise InvalidInput(f"--revision applies to Hugging Face Hub models (owner/name), not to the local path "
                               f"{str(source)!r}")
        return None
    repo_id, named = parsed
    if named is not None and revision is not None and named != revision:
        raise InvalidInput(f"{source} names revision {named!r} and --revision says {revision!r}: give one")
    return repo_id, named or revision or _DEFAULT_REVISION


class _Repo:
    """One Hub repository at one revision, for one import: whether the Hub answers is asked once."""

    def __init__(self, repo_id: str, revision: str, *, what: str) -> None:
        self.repo_id, self.revision, self.what = repo_id, revision, what
        self.name = f"{repo_id}@{revision}"
        self.unreachable = self._probe()  # why the Hub cannot be reached; None when it answers

    def _probe(self) -> str | None:
        """Ask the Hub about the repository, waiting ``HF_HUB_ETAG_TIMEOUT`` seconds at most: huggingface_hub's
        own first request has no time limit, and would hang on a network that drops packets."""
        from huggingface_hub import HfApi, constants
        from huggingface_hub.errors import HfHubHTTPError

        if constants.is_offline_mode():
            return "HF_HUB_OFFLINE is set"
        try:
            HfApi().repo_info(self.repo_id, revision=self.revision, timeout=constants.HF_HUB_ETAG_TIMEOUT)
        except HfHubHTTPError as exc:
            status = getattr(exc.response, "status_code", None)
            if status is not None and status >= 500:
                return f"the Hub answered HTTP {status}"
            raise self._error(exc) from None
        except Exception as exc:
            if not (_from_http_library(exc) or isinstance(exc, OSError)):
                raise
            return f"{exc.__class__.__name__}: {exc}"  # no answer: refused, no DNS, timed out, offline
        return None

    def download(self, patterns: Sequence[str], *, revision: str | None = None) -> Path:
        """The snapshot folder (``.../snapshots/<commit>``) holding the files of ``patterns`` that the
        repository has: downloaded, or from the cache when the Hub cannot be reached."""
        from huggingface_hub import snapshot_download

        offline = self.unreachable is not None
        try:
            folder = Path(snapshot_download(self.repo_id, revision=revision or self.revision,
                                            allow_patterns=list(patterns), local_files_only=offline))
        except Exception as exc:
            ours = self._error(exc)
            if ours is exc:
                raise
            raise ours from None
        if offline:
            log.info("%s: the Hugging Face Hub cannot be reached (%s): using the cached commit %s", self.name,
                     self.unreachable, folder.name)
        return folder

    def files(self, path: Path) -> ModelFiles:
        commit = (path if path.is_dir() else path.parent).name
        return ModelFiles(path, self.repo_id, self.revision, commit)

    def missing(self, folder: Path, lacking: str) -> HubError:
        """The snapshot lacks files the model needs: not in the cache (offline), or not in the repository."""
        if self.unreachable is not None:
            return self._fail(HubUnavailable, f"the Hugging Face Hub cannot be reached ({self.unreachable}) and its "
                              f"cached snapshot lacks {lacking}", self._remedy())
        return self._fail(HubNotFound, f"the repository (commit {folder.name}) has no {lacking}")

    def _error(self, exc: Exception) -> Exception:
        """huggingface_hub's exception as ours (others as they are)."""
        from huggingface_hub.errors import (
            GatedRepoError,
            HfHubHTTPError,
            LocalEntryNotFoundError,
            OfflineModeIsEnabled,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )

        url = f"https://huggingface.co/{self.repo_id}"
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if isinstance(exc, RevisionNotFoundError):
            return self._fail(HubNotFound, f"{self.repo_id} has no revision {self.revision!r}",
                              "give a branch, tag or commit that it has")
        if isinstance(exc, GatedRepoError):
            return self._fail(HubAccessDenied, "the repository is gated",
                              f"accept its conditions at {url} and set HF_TOKEN to an access token of that account")
        if isinstance(exc, RepositoryNotFoundError):
            return self._fail(HubNotFound, "no such repository on the Hugging Face Hub",
                              f"check the name (a private repository needs HF_TOKEN); no local file or folder "
                              f"{self.repo_id!r} exists either")
        if isinstance(exc, HfHubHTTPError) and status in (401, 403):
            return self._fail(HubAccessDenied, f"access denied (HTTP {status})",
                              f"set HF_TOKEN to an access token that may read {url}")
        if isinstance(exc, LocalEntryNotFoundError | OfflineModeIsEnabled | HfHubHTTPError) or _from_http_library(exc):
            # Not in the cache while offline, the Hub failing, or the network gone in the middle of a download.
            why = self.unreachable or f"{exc.__class__.__name__}: {(str(exc).splitlines() or [''])[0]}"
            return self._fail(HubUnavailable, f"the Hugging Face Hub cannot be reached ({why}) and {self.repo_id} is "
                              "not in the Hub cache", self._remedy())
        return exc

    def _fail(self, error: type[HubError], reason: str, remedy: str = "") -> HubError:
        """One line: what failed, why (``reason``, also in the error's details: no local paths), what to do."""
        message = f"cannot get {self.what} from {self.name}: {reason}" + (f": {remedy}" if remedy else "")
        return error(message, repo_id=self.repo_id, revision=self.revision, reason=reason)

    def _remedy(self) -> str:
        from huggingface_hub import constants

        folder = "models--" + self.repo_id.replace("/", "--")
        return (f"run again with internet (a partial download resumes), or copy {folder} from the Hub cache of a "
                f"machine that has it into {constants.HF_HUB_CACHE} (HF_HUB_CACHE), or give a local folder")


def _from_http_library(exc: Exception) -> bool:
    """An error of the HTTP client under huggingface_hub (httpx, or httpx2 from huggingface_hub 2): not imported
    here, as which one depends on huggingface_hub's version."""
    return type(exc).__module__.split(".")[0] in ("httpx", "httpx2", "httpcore", "ssl")


def _has_weights(folder: Path) -> bool:
    return any((folder / name).is_file() for name in _WEIGHT_FILES)


def _checkpoint_lacks(folder: Path) -> str | None:
    """What a checkpoint folder lacks of what loading needs (None: nothing)."""
    lacking = [name for name, present in ((_CHECKPOINT_CONFIG, (folder / _CHECKPOINT_CONFIG).is_file()),
                                          (_WEIGHTS_NAMED, _has_weights(folder))) if not present]
    return " and ".join(lacking) or None


def _require_checkpoint(folder: Path, head: str) -> None:
    if not folder.is_dir():
        raise MissingModelFiles(f"{head}: no such folder (nor a Hugging Face Hub name: owner/name)")
    lacking = _checkpoint_lacks(folder)
    if lacking:
        raise MissingModelFiles(f"{head}: the folder lacks {lacking} (a transformers save_pretrained folder holds "
                                "them)")


__all__ = ["HubAccessDenied", "HubError", "HubNotFound", "HubUnavailable", "MissingModelFiles",
           "ModelFiles", "checkpoint_files", "model_file", "parse_hub_name"]
