"""Pretrained vectors: fetch the official Spanish fastText vectors and convert them to the native store."""

from __future__ import annotations

from pathlib import Path

from nlp_service.data import DataError, download

# Published by Facebook Research with "Learning Word Vectors for 157 Languages" (Grave et al., 2018).
CC_ES = {
    "bin": {
        "url": "https://dl.fbaipublicfiles.com/fasttext/vectors-crawl/cc.es.300.bin.gz",
        "file": "cc.es.300.bin.gz",
    },
    "vec": {
        "url": "https://dl.fbaipublicfiles.com/fasttext/vectors-crawl/cc.es.300.vec.gz",
        "file": "cc.es.300.vec.gz",
    },
}


def fetch_cc_es(dest_dir: Path, fmt: str = "bin", *, url: str | None = None, timeout: float = 20.0) -> Path:
    """Download cc.es.300 (``.bin.gz`` keeps subwords; ``.vec.gz`` is smaller) with resume.

    Offline, fails within ``timeout`` seconds with a message saying where to put the file by hand.
    """
    if fmt not in CC_ES:
        raise DataError(f"format must be one of {', '.join(CC_ES)}, not {fmt!r}")
    entry = CC_ES[fmt]
    dest = Path(dest_dir) / entry["file"]
    if dest.is_file():
        return dest
    try:
        return download(url or entry["url"], dest, timeout=timeout)
    except DataError as exc:
        raise DataError(
            f"{exc}\nCannot download the Spanish fastText vectors from this machine. Download\n"
            f"  {entry['url']}\non a machine with internet, copy it to\n  {dest}\n"
            f"(or anywhere) and run:\n  nlp-service convert {dest} --name cc-es --limit 200000"
        ) from exc


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
