"""Pretrained models from the Hugging Face Hub (issue 14): ``convert``, ``import-marian``, ``import-generator``
and the ``pretrained`` default models take ``owner/name[@revision]``.

There is no Hub here, so the tests put small real models (a fastText ``.bin`` written by gensim, a Marian
checkpoint with SentencePiece vocabularies, a GPT-2 with a byte-level BPE tokenizer) into a Hub cache laid out
as huggingface_hub's downloads leave it, and run the commands in processes of their own with ``HF_HUB_CACHE``
pointing there: huggingface_hub itself resolves names, revisions and commits from it, as on a machine that
downloaded them before and went offline. The downloads themselves run against a local stand-in for the Hub's
HTTP API (:class:`FakeHub`), which also answers "not found" and "gated" as the Hub does. Offline with nothing
cached, a refused or silent Hub, and those answers each fail at once with one line that says what to do; the
``pretrained`` profile builds the demo instead, with a warning.
"""

from __future__ import annotations

import gzip
import hashlib
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nlp_service.artifacts import read_manifest
from nlp_service.config import Settings
from nlp_service.data import DATASETS_DIR
from nlp_service.defaults import DEFAULT_MODELS, DEMO, BackgroundBuilds
from nlp_service.hub import MissingModelFiles, parse_hub_name
from nlp_service.options import read_config
from nlp_service.registry import load_model
from nlp_service.translate import import_marian

from .helpers import save_tiny_generator, save_tiny_marian

FASTTEXT, MARIAN, GPT2 = "facebook/fasttext-es-vectors", "Helsinki-NLP/opus-mt-es-en", "DeepESP/gpt2-spanish"
SPEC = {spec.name: spec for spec in DEFAULT_MODELS}


# ---- small real models, and a Hub cache holding them ------------------------------------------------


def save_tiny_fasttext(path: Path, *, dim: int, lines: int) -> Path:
    """A fastText model (with subword buckets) trained by gensim on Spanish verses, in Facebook's .bin format."""
    from gensim.models.fasttext import FastText, save_facebook_model

    with gzip.open(DATASETS_DIR / "corpus_es" / "rv1909.txt.gz", "rt", encoding="utf-8") as src:
        sentences = [line.split() for line in itertools.islice(src, lines)]
    model = FastText(vector_size=dim, min_count=2, bucket=500, min_n=3, max_n=4, epochs=1, workers=1, seed=1)
    model.build_vocab(sentences)
    model.train(sentences, total_examples=len(sentences), epochs=1)
    save_facebook_model(model, str(path))
    return path


def save_hub_marian(folder: Path) -> Path:
    """A tiny random Marian model laid out as Helsinki-NLP's repositories are: config, vocabularies, and the
    weights as ``pytorch_model.bin`` (their format), no safetensors."""
    import torch
    from transformers import MarianMTModel

    out = save_tiny_marian(folder, pairs=600, vocab_size=150, width=16)
    torch.save(MarianMTModel.from_pretrained(out).state_dict(), out / "pytorch_model.bin")
    (out / "model.safetensors").unlink()
    return out


def add_snapshot(cache: Path, repo_id: str, files: Mapping[str, Path | bytes], refs: tuple[str, ...] = ("main",)
                 ) -> str:
    """Put ``files`` (repository path: content) into the Hub cache ``cache`` as huggingface_hub's downloads
    leave them: ``models--owner--name/blobs/<hash>``, linked from ``snapshots/<commit>/<path>``, and each ref
    (branch or tag) in ``refs/`` naming the commit. Returns the commit (made from the contents)."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    contents = {rel: src.read_bytes() if isinstance(src, Path) else src for rel, src in files.items()}
    commit = hashlib.sha1(b"".join(rel.encode() + hashlib.sha256(c).digest() for rel, c in sorted(contents.items())),
                          usedforsecurity=False).hexdigest()
    for rel, content in contents.items():
        blob = repo / "blobs" / hashlib.sha256(content).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(content)
        link = repo / "snapshots" / commit / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    for ref in refs:
        (repo / "refs" / ref).parent.mkdir(parents=True, exist_ok=True)
        (repo / "refs" / ref).write_text(commit)
    return commit


def folder_files(folder: Path) -> dict[str, Path]:
    return {p.relative_to(folder).as_posix(): p for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The source files of the tiny models."""
    folder = tmp_path_factory.mktemp("sources")
    return {
        "fasttext": save_tiny_fasttext(folder / "ft.bin", dim=8, lines=300),
        "fasttext-old": save_tiny_fasttext(folder / "ft-old.bin", dim=6, lines=200),
        "marian": save_hub_marian(folder),
        "gpt2": save_tiny_generator(folder / "generators", "tiny", positions=64) / "hf",
    }


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory: pytest.TempPathFactory, models: dict[str, Path]) -> tuple[Path, dict[str, str]]:
    """A Hub cache holding the three repositories of the ``pretrained`` profile (the fastText one at two
    commits: ``main`` and the tag ``v1``), with files of theirs that loading never needs beside."""
    cache = tmp_path_factory.mktemp("hub") / "hub"
    commits = {
        "fasttext-v1": add_snapshot(cache, FASTTEXT, {"model.bin": models["fasttext-old"]}, refs=("v1",)),
        "fasttext": add_snapshot(cache, FASTTEXT, {"model.bin": models["fasttext"], "README.md": b"# cc.es.300\n"}),
        "marian": add_snapshot(cache, MARIAN, folder_files(models["marian"])),
        "gpt2": add_snapshot(cache, GPT2, folder_files(models["gpt2"])),
    }
    return cache, commits


# ---- running the commands as a user does: their own process, the Hub configured by the environment -----


def hub_env(cache: Path, home: Path, **extra: str) -> dict[str, str]:
    """This process's environment without our settings and Hugging Face's, then a Hub cache (offline unless
    ``extra`` says otherwise), a home of its own (no token file), and ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NLP_", "HF_", "TRANSFORMERS_"))}
    return env | {"HF_HOME": str(home), "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1",
                  "NLP_CACHE_DIR": str(home / "nlp-cache"), "NLP_DEVICE": "cpu"} | extra


def nlp(*args: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nlp_service", *args], capture_output=True, text=True, env=env,
                          timeout=timeout, check=False)


def resolve(cases: list[tuple[str, str | None]], env: dict[str, str]) -> list[dict[str, Any]]:
    """``nlp_service.hub.model_file(source, "model.bin", revision=...)`` for each case, in a process with
    ``env``: the snapshot found (path, revision, commit), or the error (class, code, message)."""
    code = """if True:
        import json, sys
        from nlp_service.hub import model_file
        out = []
        for source, revision in json.loads(sys.argv[1]):
            try:
                f = model_file(source, "model.bin", revision=revision, what="vectors")
                out.append({"path": str(f.path), "revision": f.revision, "commit": f.commit,
                            "provenance": f.provenance})
            except Exception as exc:
                out.append({"error": type(exc).__name__, "code": getattr(exc, "code", None), "message": str(exc),
                            "details": getattr(exc, "details", None)})
        print(json.dumps(out))
    """
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(cases)], capture_output=True, text=True, env=env,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def error_lines(proc: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith("error: ")]


# ---- names ------------------------------------------------------------------------------------------


def test_hub_names_and_local_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """owner/name[@revision] is a Hub name unless something of that name exists here; a Path is always local."""
    monkeypatch.chdir(tmp_path)
    assert parse_hub_name(FASTTEXT) == (FASTTEXT, None)
    assert parse_hub_name(f"{MARIAN}@v1.0") == (MARIAN, "v1.0")
    assert parse_hub_name(f"{GPT2}@{'a' * 40}") == (GPT2, "a" * 40)
    (tmp_path / "facebook" / "fasttext-es-vectors").mkdir(parents=True)
    assert parse_hub_name(FASTTEXT) is None  # the local folder wins
    for local in ("model.bin", "cc.es.300.vec", "/srv/models/hf", "./owner/name", "a/b/c", "~/owner/name"):
        assert parse_hub_name(local) is None, local
    assert parse_hub_name(Path("owner/name")) is None


# ---- convert and the imports, from the cache ----------------------------------------------------------


def test_convert_a_hub_name_records_the_repository_and_commit(hub_cache: tuple[Path, dict[str, str]],
                                                              models: dict[str, Path], tmp_path: Path) -> None:
    from nlp_service.vectors import VectorsModel, convert_vectors

    cache, commits = hub_cache
    out = tmp_path / "models"
    proc = nlp("convert", FASTTEXT, "--name", "cc-es", "--limit", "100", "--no-ann", "--models-dir", str(out),
               env=hub_env(cache, tmp_path / "home"))
    assert proc.returncode == 0, proc.stderr
    data = read_manifest(out / "cc-es").data
    assert data["source"] == f"{FASTTEXT}@{commits['fasttext']}"
    assert data["hub"] == {"repo_id": FASTTEXT, "revision": "main", "commit": commits["fasttext"]}
    assert data["source_name"] == "model.bin" and data["source_size"] == models["fasttext"].stat().st_size

    # The same model as converting the file itself: same words, same vectors, subwords for unseen words.
    local = convert_vectors(models["fasttext"], tmp_path / "local", "ft", limit=100, ann=False, progress=False)
    hub, own = VectorsModel.load(out / "cc-es"), VectorsModel.load(local)
    assert hub.store.words == own.store.words and len(hub.store) == 100
    assert np.array_equal(np.asarray(hub.store.unit), np.asarray(own.store.unit))
    [(unseen, how)] = hub.word_vectors(["palabrasinventadas"])  # built from its n-grams
    assert np.array_equal(unseen, own.word_vectors(["palabrasinventadas"])[0][0]) and np.any(unseen), how
    assert read_manifest(local).data == {"source": str(models["fasttext"]), "source_name": "ft.bin",
                                         "source_size": models["fasttext"].stat().st_size}


def test_revision_pinning_picks_the_snapshot(hub_cache: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    """A branch, a tag or a commit, named with @ or --revision, each finds its own snapshot in the cache."""
    cache, commits = hub_cache
    snapshots = cache / "models--facebook--fasttext-es-vectors" / "snapshots"
    new, old = commits["fasttext"], commits["fasttext-v1"]
    found = resolve([(FASTTEXT, None), (f"{FASTTEXT}@v1", None), (FASTTEXT, "v1"), (FASTTEXT, old),
                     (f"{FASTTEXT}@{old}", old), (f"{FASTTEXT}@v1", "main"), (f"{FASTTEXT}@v2", None)],
                    hub_env(cache, tmp_path / "home"))
    assert [(f.get("revision"), f.get("commit")) for f in found[:5]] == [
        ("main", new), ("v1", old), ("v1", old), (old, old), (old, old)]
    assert [Path(f["path"]) for f in found[:2]] == [snapshots / new / "model.bin", snapshots / old / "model.bin"]
    assert found[1]["provenance"] == {"source": f"{FASTTEXT}@{old}",
                                      "hub": {"repo_id": FASTTEXT, "revision": "v1", "commit": old}}
    assert found[5]["code"] == "validation_error" and "give one" in found[5]["message"]
    assert found[6]["code"] == "hub_unavailable" and "@v2" in found[6]["message"]  # offline: not in the cache


@pytest.mark.slow
def test_import_marian_and_generator_from_the_hub_cache(hub_cache: tuple[Path, dict[str, str]],
                                                        models: dict[str, Path], tmp_path: Path) -> None:
    """A Marian checkpoint in PyTorch's format and a GPT-2 in safetensors, each imported by its Hub name: the
    saved models load and compute what their sources do, and say which commit they came from."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, MarianMTModel

    cache, commits = hub_cache
    out = tmp_path / "models"
    env = hub_env(cache, tmp_path / "home")
    proc = nlp("import-marian", MARIAN, "--name", "opus-es-en", "--source", "es", "--target", "en",
               "--models-dir", str(out), env=env)
    assert proc.returncode == 0, proc.stderr
    proc = nlp("import-generator", GPT2, "--revision", commits["gpt2"], "--name", "gpt2-hub", "--models-dir",
               str(out), env=env)
    assert proc.returncode == 0, proc.stderr

    translator = load_model(out / "opus-es-en", Settings(device="cpu"))
    assert read_manifest(out / "opus-es-en").data["hub"] == {"repo_id": MARIAN, "revision": "main",
                                                              "commit": commits["marian"]}
    text = "Pulse el botón para guardar el documento."
    tokenizer = AutoTokenizer.from_pretrained(models["marian"])
    reference = MarianMTModel.from_pretrained(models["marian"]).eval()
    with torch.inference_mode():
        ids = reference.generate(**tokenizer([text], return_tensors="pt"), num_beams=2, max_new_tokens=10,
                                 do_sample=False, length_penalty=0.6)
    want = tokenizer.batch_decode(ids, skip_special_tokens=True)[0].strip()
    assert translator.translate([text], beam_size=2, max_length=10) == [want]

    generator = load_model(out / "gpt2-hub", Settings(device="cpu"))
    assert generator.describe()["source"] == f"{GPT2}@{commits['gpt2']}"
    assert read_manifest(out / "gpt2-hub").data["hub"]["revision"] == commits["gpt2"]
    source = AutoModelForCausalLM.from_pretrained(models["gpt2"])
    for name, tensor in source.state_dict().items():
        assert torch.equal(generator.model.state_dict()[name], tensor), name


# ---- failures: one line that says what to do, at once ------------------------------------------------


class _SilentHub:
    """A port that accepts connections and never answers: a network that drops what it is sent."""

    def __enter__(self) -> str:
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(16)
        return f"http://127.0.0.1:{self._socket.getsockname()[1]}"

    def __exit__(self, *exc: object) -> None:
        self._socket.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("network", ["HF_HUB_OFFLINE", "refused", "silent"])
def test_without_the_hub_and_nothing_cached_the_error_is_clear_and_quick(network: str, tmp_path: Path) -> None:
    with _SilentHub() as silent:
        endpoint = {"refused": f"http://127.0.0.1:{_closed_port()}", "silent": silent}.get(network)
        extra = {"HF_HUB_OFFLINE": "1"} if endpoint is None else {
            "HF_HUB_OFFLINE": "0", "HF_ENDPOINT": endpoint, "HF_HUB_ETAG_TIMEOUT": "2"}
        env = hub_env(tmp_path / "empty-cache", tmp_path / "home", **extra)
        started = time.monotonic()
        proc = nlp("import-generator", GPT2, "--name", "g", "--models-dir", str(tmp_path / "models"), env=env)
        elapsed = time.monotonic() - started
    assert proc.returncode == 1, proc.stderr
    [line] = error_lines(proc)
    assert f"cannot get a causal language model from {GPT2}@main: the Hugging Face Hub cannot be reached" in line
    assert {"HF_HUB_OFFLINE": "HF_HUB_OFFLINE is set", "refused": "ConnectError",
            "silent": "Timeout"}[network] in line
    assert str(tmp_path / "empty-cache") in line and "models--DeepESP--gpt2-spanish" in line
    # The silent Hub: 2 s for our request (huggingface_hub's first, an agent registry, waits 3 s more), plus the
    # start of Python and torch.
    assert elapsed < 30, elapsed
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())


class FakeHub(ThreadingHTTPServer):
    """A local stand-in for the Hub: the parts of its HTTP API that huggingface_hub's downloads use (repository
    info, file tree, files) over ``repos`` (repo_id: {path: content}, one commit each on ``main``), and its error
    answers (the X-Error-Code header) for an unknown repository or revision and a gated repository. Records the
    files downloaded and the tokens sent."""

    def __init__(self, repos: Mapping[str, Mapping[str, bytes]]) -> None:
        super().__init__(("127.0.0.1", 0), _FakeHubHandler)
        self.repos = repos
        self.commits = {repo: hashlib.sha1(repr(sorted(files.items())).encode(), usedforsecurity=False).hexdigest()
                        for repo, files in repos.items()}
        self.downloaded: list[tuple[str, str]] = []  # (repo_id, path) of each file sent
        self.tokens: set[str | None] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _FakeHubHandler(BaseHTTPRequestHandler):
    server: FakeHub

    def do_GET(self) -> None:
        hub = self.server
        parts = self.path.split("?")[0].strip("/").split("/")
        api = parts[:2] == ["api", "models"]
        repo = "/".join(parts[2:4] if api else parts[:2])
        if "gated" in repo:
            return self._error(401, "GatedRepo")
        if repo not in hub.repos:
            return self._error(404, "RepoNotFound")
        hub.tokens.add(self.headers.get("Authorization"))
        files, commit = hub.repos[repo], hub.commits[repo]
        if api and parts[4] == "revision":
            if parts[5] not in ("main", commit):
                return self._error(404, "RevisionNotFound")
            return self._send(json.dumps({"id": repo, "sha": commit,
                                          "siblings": [{"rfilename": f} for f in files]}).encode())
        if api and parts[4] == "tree":
            return self._send(json.dumps([{"type": "file", "oid": _sha1(c), "size": len(c), "path": f}
                                          for f, c in files.items()]).encode())
        path = "/".join(parts[4:])  # owner/name/resolve/<commit>/<path>
        if path not in files:
            return self._error(404, "EntryNotFound")
        if self.command == "GET":
            hub.downloaded.append((repo, path))
        self._send(files[path], {"X-Repo-Commit": commit, "ETag": f'"{_sha1(files[path])}"'})

    do_HEAD = do_GET

    def _send(self, body: bytes, headers: Mapping[str, str] | None = None, status: int = 200) -> None:
        self.send_response(status)
        for key, value in {"Content-Type": "application/json", **(headers or {})}.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command == "GET":
            self.wfile.write(body)

    def _error(self, status: int, code: str) -> None:
        self._send(json.dumps({"error": code}).encode(), {"X-Error-Code": code}, status)

    def log_message(self, *args: object) -> None:
        pass


def _sha1(content: bytes) -> str:
    return hashlib.sha1(content, usedforsecurity=False).hexdigest()


@contextmanager
def fake_hub(repos: Mapping[str, Mapping[str, bytes]]) -> Iterator[FakeHub]:
    server = FakeHub(repos)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.slow
def test_online_only_the_files_a_model_needs_are_downloaded(models: dict[str, Path], tmp_path: Path) -> None:
    """From a Hub (a local stand-in): of each repository only what loading needs comes down (a fastText
    repository's model.bin; a checkpoint's config, tokenizer and one copy of its weights, safetensors first),
    with the token from HF_TOKEN, into the cache, which then serves the same commit offline."""
    def read(folder: Path) -> dict[str, bytes]:
        return {rel: path.read_bytes() for rel, path in folder_files(folder).items()}

    others = {"tf_model.h5": b"TensorFlow weights", "rust_model.ot": b"Rust weights", "README.md": b"# model\n"}
    repos = {FASTTEXT: {"model.bin": models["fasttext"].read_bytes(), "README.md": b"# cc.es.300\n",
                        "model.vec": b"the text format, not needed"},
             MARIAN: read(models["marian"]) | others,
             GPT2: read(models["gpt2"]) | others | {"pytorch_model.bin": b"a second copy, not needed"}}
    cache, out = tmp_path / "cache", tmp_path / "models"
    with fake_hub(repos) as hub:
        env = hub_env(cache, tmp_path / "home", HF_HUB_OFFLINE="0", HF_ENDPOINT=hub.url, HF_TOKEN="hf_test_token",
                      HF_HUB_DISABLE_PROGRESS_BARS="1")
        for args in (["convert", FASTTEXT, "--name", "v", "--limit", "50", "--no-ann"],
                     ["import-marian", MARIAN, "--name", "t"], ["import-generator", GPT2, "--name", "g"]):
            proc = nlp(*args, "--models-dir", str(out), env=env)
            assert proc.returncode == 0, proc.stderr
        downloaded = {repo: sorted(path for r, path in hub.downloaded if r == repo) for repo in repos}
        assert hub.tokens == {"Bearer hf_test_token"}  # every request about a repository
    assert downloaded[FASTTEXT] == ["model.bin"]
    assert downloaded[MARIAN] == sorted(set(repos[MARIAN]) - set(others))  # config, vocabularies, weights
    assert "pytorch_model.bin" in downloaded[MARIAN] and "source.spm" in downloaded[MARIAN]
    assert downloaded[GPT2] == sorted(set(repos[GPT2]) - set(others) - {"pytorch_model.bin"})
    for name, repo in (("v", FASTTEXT), ("t", MARIAN), ("g", GPT2)):
        assert read_manifest(out / name).data["hub"] == {"repo_id": repo, "revision": "main",
                                                         "commit": hub.commits[repo]}
    # Offline now: the cache that huggingface_hub filled serves the same commit.
    proc = nlp("import-generator", GPT2, "--name", "g2", "--models-dir", str(out), env=hub_env(cache, tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert read_manifest(out / "g2").data == read_manifest(out / "g").data


def test_not_found_gated_and_unknown_revision_say_what_to_do(tmp_path: Path) -> None:
    with fake_hub({FASTTEXT: {"model.bin": b"..."}}) as hub:
        env = hub_env(tmp_path / "cache", tmp_path / "home", HF_HUB_OFFLINE="0", HF_ENDPOINT=hub.url)
        missing, gated, revision = resolve([("someone/no-such-vectors", None), ("someone/gated-vectors", None),
                                            (f"{FASTTEXT}@nope", None)], env)
    assert missing["code"] == "hub_not_found" and "no such repository" in missing["message"]
    assert "HF_TOKEN" in missing["message"]
    assert "no local file or folder 'someone/no-such-vectors'" in missing["message"]
    assert gated["code"] == "hub_access_denied" and "gated" in gated["message"]
    assert "https://huggingface.co/someone/gated-vectors" in gated["message"] and "HF_TOKEN" in gated["message"]
    assert revision["code"] == "hub_not_found" and f"{FASTTEXT} has no revision 'nope'" in revision["message"]
    assert all(str(tmp_path) not in r["details"]["reason"] for r in (missing, gated, revision))


def test_a_local_folder_without_the_files_loading_needs(models: dict[str, Path], tmp_path: Path) -> None:
    folder = tmp_path / "marian"
    shutil.copytree(models["marian"], folder)
    (folder / "pytorch_model.bin").unlink()
    with pytest.raises(MissingModelFiles, match=r"cannot load a Marian model from .*: the folder lacks weights "
                                                r"\(model.safetensors or pytorch_model.bin\)"):
        import_marian(folder, tmp_path / "models", "x", source_lang="es", target_lang="en")
    with pytest.raises(MissingModelFiles, match="no such folder"):
        import_marian(tmp_path / "nothing", tmp_path / "models", "x", source_lang="es", target_lang="en")
    with pytest.raises(ValueError, match="--revision applies to Hugging Face Hub models"):
        import_marian(models["marian"], tmp_path / "models", "x", source_lang="es", target_lang="en",
                      revision="main")
    assert not (tmp_path / "models").exists()


# ---- the pretrained profile ---------------------------------------------------------------------------


def test_the_pretrained_profile_configs_are_the_commands_they_document() -> None:
    """Each pretrained config file says which command makes the same model; that is the command it runs."""
    from nlp_service.defaults import FOLDER
    from nlp_service.defaults._imports import IMPORTS  # white-box: the config files' own reader

    assert Settings.model_fields["defaults"].default == DEMO
    shipped = sorted(FOLDER.glob("*.pretrained.toml"))
    assert [p.name for p in shipped] == ["gpt2-es.pretrained.toml", "translate-es-en.pretrained.toml",
                                         "w2v-es.pretrained.toml"]
    for path in shipped:
        name = path.name.removesuffix(".pretrained.toml")
        assert SPEC[name].config_path(profile="pretrained") == path
        command = IMPORTS[read_config(path)["command"]]
        documented = command.command_line(name, path).removesuffix(" --overwrite")
        assert documented in path.read_text(encoding="utf-8"), documented
    assert SPEC["bow-es"].config_path(profile="pretrained") == SPEC["bow-es"].path  # no Hub model: the demo


def test_the_pretrained_profile_builds_from_the_hub(hub_cache: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    """`NLP_DEFAULTS=pretrained nlp-service defaults`: the three Hub models, each the kind of its default."""
    cache, commits = hub_cache
    out = tmp_path / "models"
    names = ["w2v-es", "translate-es-en", "gpt2-es"]
    proc = nlp("defaults", *itertools.chain.from_iterable(("--only", n) for n in names), "--models-dir", str(out),
               env=hub_env(cache, tmp_path / "home", NLP_DEFAULTS="pretrained"))
    assert proc.returncode == 0, proc.stderr
    assert "warning" not in proc.stderr
    for name, repo, key in zip(names, (FASTTEXT, MARIAN, GPT2), ("fasttext", "marian", "gpt2"), strict=True):
        manifest = read_manifest(out / name)
        assert manifest.kind == SPEC[name].kind and manifest.data["source"] == f"{repo}@{commits[key]}", name
        assert load_model(out / name, Settings(device="cpu")).name == name
    assert read_manifest(out / "w2v-es").params["limit"] == 200_000
    assert read_manifest(out / "translate-es-en").extra["source_lang"] == "es"


@pytest.fixture(scope="module")
def tiny_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A defaults folder whose w2v-es demo takes seconds (the pretrained configs stay the shipped ones)."""
    folder = tmp_path_factory.mktemp("defaults")
    corpus = folder / "corpus.txt"
    with gzip.open(DATASETS_DIR / "corpus_es" / "rv1909.txt.gz", "rt", encoding="utf-8") as src:
        corpus.write_text("".join(itertools.islice(src, 2000)), encoding="utf-8")
    (folder / "w2v-es.toml").write_text(f'command = "word2vec"\ndescription = "tiny demo"\ncorpus = ["{corpus}"]\n'
                                        'vector_size = 16\nmin_count = 2\nepochs = 1\nann = false\n')
    return folder


def test_offline_the_pretrained_profile_builds_the_demo_with_a_warning(tiny_demo: Path, tmp_path: Path) -> None:
    out = tmp_path / "models"
    proc = nlp("defaults", "--only", "w2v-es", "--models-dir", str(out), "--defaults-dir", str(tiny_demo),
               env=hub_env(tmp_path / "empty-cache", tmp_path / "home", NLP_DEFAULTS="pretrained"))
    assert proc.returncode == 0, proc.stderr
    [warning] = [line for line in proc.stderr.splitlines() if line.startswith("warning: ")]
    assert warning.startswith(f"warning: w2v-es: not imported from {FASTTEXT}: the Hugging Face Hub cannot be "
                              "reached (HF_HUB_OFFLINE is set)")
    assert "building the demo instead (tiny demo)" in warning
    assert f"To retry once the Hub can be reached: nlp-service convert {FASTTEXT} --name w2v-es --limit 200000 " \
           "--overwrite" in warning
    manifest = read_manifest(out / "w2v-es")
    assert manifest.params["word2vec"]["vector_size"] == 16 and "hub" not in manifest.data  # the demo's run


def test_a_background_build_logs_the_fallback_and_shows_it_with_its_progress(
        tiny_demo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """What `NLP_DEFAULTS=pretrained make serve` does offline: the server's build process falls back, the
    server logs a WARNING, and the build's status (what /ready and 503 model_building show) carries it."""
    for key, value in hub_env(tmp_path / "empty-cache", tmp_path / "home", HF_HUB_OFFLINE="0",
                              HF_ENDPOINT=f"http://127.0.0.1:{_closed_port()}").items():
        monkeypatch.setenv(key, value)  # the build process's environment: an unreachable Hub
    settings = Settings(models_dir=tmp_path / "models", defaults="pretrained")
    builds = BackgroundBuilds(settings, [SPEC["w2v-es"]], config_dir=tiny_demo)
    seen: dict[str, Any] = {}
    done = threading.Event()

    def built(name: str) -> None:
        seen["status"] = builds.status(name)  # the service is told while the build still counts as under way
        done.set()

    def failed(name: str, reason: str) -> None:
        seen["failed"] = reason
        done.set()

    with caplog.at_level("INFO", logger="nlp_service.defaults"):
        builds.start(built, failed)
        assert done.wait(120), "no end of the build"
    assert "failed" not in seen, seen
    warning = seen["status"]["warning"]
    assert warning.startswith(f"w2v-es: not imported from {FASTTEXT}: the Hugging Face Hub cannot be reached "
                              "(ConnectError")
    assert "nlp-service convert" in warning and str(tmp_path) not in warning  # no server paths for API clients
    [record] = [r for r in caplog.records if r.levelname == "WARNING"]
    assert record.getMessage() == f"[w2v-es] warning: {warning}"
    assert any("pretrained profile" in r.getMessage() for r in caplog.records)
    assert read_manifest(tmp_path / "models" / "w2v-es").params["word2vec"]["vector_size"] == 16
