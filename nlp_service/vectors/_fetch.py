"""The published Spanish fastText vectors (cc.es.300): a resumable download, then ``nlp-service convert``."""

from __future__ import annotations

from pathlib import Path

from ..data import DataError, download

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

# The file of a vectors repository on the Hugging Face Hub: Facebook's fastText repositories there (cc.es.300
# is facebook/fasttext-es-vectors) each hold their uncompressed .bin under this name.
HUB_VECTORS_FILE = "model.bin"


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
