"""``nlp-service hash-key``: the line of ``NLP_API_KEYS_FILE`` that accepts a key. The file holds only
digests, so it may be read by more people than the keys themselves."""

from __future__ import annotations

import getpass
import hashlib
import sys
from typing import Annotated

import typer

from ._app import app


@app.command("hash-key")
def hash_key(
    key: Annotated[str | None, typer.Argument(
        help="The key. Default: read from standard input (keeps it out of shell history and process lists).",
        show_default=False)] = None,
    label: Annotated[str | None, typer.Option(help="A name for the key, written after its digest: log lines "
                                              "name the key by it.")] = None,
) -> None:
    """Print the SHA-256 digest of KEY (and its label): a line for NLP_API_KEYS_FILE."""
    if key is None:
        # Typed at a terminal: not echoed. Piped (`echo -n "$KEY" | nlp-service hash-key`): its first line.
        key = getpass.getpass("key: ") if sys.stdin.isatty() else sys.stdin.readline()
    key = key.strip()
    if not key:
        typer.secho("error: empty key", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)
    if label is not None and (not label.strip() or "\n" in label):
        typer.secho("error: a label is one non-empty line", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)
    # The service hashes the bearer token the same way (nlp_service.api: SHA-256 of its UTF-8 bytes).
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
    typer.echo(f"{digest}  {label.strip()}" if label else digest)
