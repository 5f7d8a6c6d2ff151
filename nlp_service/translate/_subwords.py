"""Subword vocabularies (Hugging Face ``tokenizers``): BPE or Unigram, trained on the training side only.

Whitespace becomes ``▁`` (SentencePiece's convention) and punctuation is split off, so decoding
the pieces gives back the text's spacing exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

PAD, UNK, BOS, EOS = 0, 1, 2, 3
SPECIALS = ["<pad>", "<unk>", "<s>", "</s>"]
Algorithm = Literal["bpe", "unigram"]
# Always in the vocabulary, seen in training or not: ASCII, Latin-1 letters and signs, typographic
# punctuation. Other unseen characters become <unk>.
ALPHABET = sorted({chr(c) for c in range(0x21, 0x7F)} | {chr(c) for c in range(0xA1, 0x100)}
                  | set("‘’“”«»–—…€•"))


class Subwords:
    """A trained subword tokenizer with the four special ids fixed at 0-3."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        for i, tok in enumerate(SPECIALS):
            if tokenizer.token_to_id(tok) != i:
                raise ValueError(f"subword vocabulary must have {tok!r} at id {i}")
        self.tokenizer = tokenizer

    @classmethod
    def train(cls, texts: Iterable[str], *, vocab_size: int = 8000, algorithm: Algorithm = "bpe") -> Subwords:
        if algorithm == "bpe":
            tok = Tokenizer(models.BPE(unk_token=SPECIALS[UNK]))
            trainer: trainers.Trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS,
                                                            min_frequency=2, show_progress=False,
                                                            initial_alphabet=ALPHABET)
        elif algorithm == "unigram":
            tok = Tokenizer(models.Unigram())
            trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=SPECIALS,
                                              unk_token=SPECIALS[UNK], show_progress=False,
                                              initial_alphabet=ALPHABET)
        else:
            raise ValueError(f"subword algorithm must be bpe or unigram, not {algorithm!r}")
        tok.normalizer = normalizers.NFKC()
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Metaspace(),
                                                     pre_tokenizers.Punctuation("isolated")])
        tok.decoder = decoders.Metaspace()
        tok.train_from_iterator(texts, trainer)
        return cls(tok)

    @classmethod
    def load(cls, path: Path) -> Subwords:
        return cls(Tokenizer.from_file(str(path)))

    def save(self, path: Path) -> None:
        self.tokenizer.save(str(path))

    def __len__(self) -> int:
        return self.tokenizer.get_vocab_size()

    def encode(self, texts: Sequence[str], max_tokens: int | None = None) -> list[list[int]]:
        """Piece ids of each text followed by ``</s>``, cut to ``max_tokens`` pieces first."""
        out = []
        for enc in self.tokenizer.encode_batch(list(texts), add_special_tokens=False):
            ids = enc.ids if max_tokens is None else enc.ids[:max_tokens]
            out.append([*ids, EOS])
        return out

    def count(self, texts: Sequence[str]) -> list[int]:
        return [len(e.ids) for e in self.tokenizer.encode_batch(list(texts), add_special_tokens=False)]

    def pieces(self, ids: Sequence[int]) -> list[str]:
        """The pieces of ``ids`` as strings (``▁`` marks a space before a piece; specials by name)."""
        return [self.tokenizer.id_to_token(i) or SPECIALS[UNK] for i in ids]

    def decode(self, ids: Sequence[Sequence[int]]) -> list[str]:
        return [text.strip() for text in self.tokenizer.decode_batch([list(x) for x in ids],
                                                                     skip_special_tokens=True)]
