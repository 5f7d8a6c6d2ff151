"""Tatoeba sentence pairs (the manythings.org Anki export): a resumable download for ``train translator``."""

from __future__ import annotations

from pathlib import Path

from ..data import DataError, download

# Sentence pairs from the Tatoeba project, in the tab-separated Anki export of manythings.org.
TATOEBA = {"url": "https://www.manythings.org/anki/{lang}-eng.zip", "file": "{lang}-eng.zip"}


def fetch_tatoeba(dest_dir: Path, lang: str = "spa", *, url: str | None = None, timeout: float = 20.0) -> Path:
    """Download the Tatoeba ``{lang}-eng.zip`` pairs (English<TAB>other<TAB>attribution), with resume.

    Offline, fails within ``timeout`` seconds with a message saying where to put the file by hand.
    """
    if not lang.isalpha() or len(lang) != 3:
        raise DataError(f"lang must be a three-letter code such as 'spa', not {lang!r}")
    address = url or TATOEBA["url"].format(lang=lang)
    dest = Path(dest_dir) / TATOEBA["file"].format(lang=lang)
    if dest.is_file():
        return dest
    try:
        return download(address, dest, timeout=timeout)
    except DataError as exc:
        raise DataError(
            f"{exc}\nCannot download the Tatoeba pairs from this machine. Download\n  {address}\n"
            f"on a machine with internet, copy it to\n  {dest}\nand run:\n"
            f"  nlp-service train translator {dest} --source es --target en"
        ) from exc
