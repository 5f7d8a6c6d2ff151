"""Recurrent text classifier (Elman RNN, LSTM or GRU) in PyTorch.

Packed variable-length sequences, optional bidirectionality, embeddings random or taken from a
vectors model (word2vec or fastText, whose subwords cover unseen words), Adam with gradient
clipping, early stopping on validation macro-F1, a checkpoint every epoch that a restarted run
resumes from, mixed precision on CUDA. Saved as a ``state_dict`` plus JSON config and a
vocabulary; loading uses ``torch.load(weights_only=True)``: no arbitrary unpickling.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from ..torch_utils import load_checkpoint, pick_device, save_checkpoint, seed_everything
from ._metrics import classification_metrics

PAD, UNK = "<pad>", "<unk>"
Cell = Literal["rnn", "lstm", "gru"]


@dataclass
class RNNParams:
    cell: Cell = "lstm"
    embedding_dim: int = 128
    hidden_size: int = 128
    layers: int = 1
    bidirectional: bool = True
    dropout: float = 0.5
    pooling: Literal["last", "max"] = "max"
    max_length: int = 100
    min_freq: int = 2
    max_vocab: int = 30_000
    freeze_embeddings: bool = False
    batch_size: int = 64
    epochs: int = 10
    learning_rate: float = 2e-3
    weight_decay: float = 0.0
    clip_norm: float = 1.0
    patience: int = 3
    seed: int = 13

    def validate(self) -> None:
        if self.cell not in ("rnn", "lstm", "gru"):
            raise ValueError(f"cell must be rnn, lstm or gru, not {self.cell!r}")
        if self.pooling not in ("last", "max"):
            raise ValueError(f"pooling must be last or max, not {self.pooling!r}")
        for name in ("embedding_dim", "hidden_size", "layers", "max_length", "batch_size", "epochs", "min_freq"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if not 0 <= self.dropout < 1:
            raise ValueError("dropout must be in [0, 1)")
        if self.clip_norm <= 0 or self.learning_rate <= 0:
            raise ValueError("clip_norm and learning_rate must be positive")

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]


class Vocabulary:
    def __init__(self, words: list[str]) -> None:
        if words[:2] != [PAD, UNK]:
            raise ValueError("vocabulary must start with <pad>, <unk>")
        self.words = words
        self.index = {w: i for i, w in enumerate(words)}

    @classmethod
    def build(cls, token_lists: Sequence[Sequence[str]], min_freq: int, max_size: int) -> Vocabulary:
        counts = Counter(t for tokens in token_lists for t in tokens)
        kept = [w for w, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if c >= min_freq]
        return cls([PAD, UNK, *kept[: max(0, max_size - 2)]])

    def encode(self, tokens: Sequence[str], max_length: int) -> list[int]:
        ids = [self.index.get(t, 1) for t in tokens[:max_length]]
        return ids or [1]  # an empty text is one unknown token, not a zero-length sequence

    def __len__(self) -> int:
        return len(self.words)


class RecurrentClassifier(nn.Module):
    def __init__(self, vocab_size: int, num_classes: int, p: RNNParams) -> None:
        super().__init__()
        self.pooling = p.pooling
        self.embedding = nn.Embedding(vocab_size, p.embedding_dim, padding_idx=0)
        rnn_cls = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[p.cell]
        self.rnn = rnn_cls(p.embedding_dim, p.hidden_size, num_layers=p.layers, batch_first=True,
                           bidirectional=p.bidirectional, dropout=p.dropout if p.layers > 1 else 0.0)
        self.dropout = nn.Dropout(p.dropout)
        self.out = nn.Linear(p.hidden_size * (2 if p.bidirectional else 1), num_classes)
        self.directions = 2 if p.bidirectional else 1

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        emb = self.dropout(self.embedding(ids))
        packed = pack_padded_sequence(emb, lengths.cpu(), batch_first=True, enforce_sorted=False)
        outputs, hidden = self.rnn(packed)
        if isinstance(hidden, tuple):  # LSTM: (h, c)
            hidden = hidden[0]
        if self.pooling == "last":
            feats = torch.cat([hidden[-d - 1] for d in range(self.directions)][::-1], dim=1)
        else:
            padded, _ = torch.nn.utils.rnn.pad_packed_sequence(outputs, batch_first=True,
                                                               padding_value=float("-inf"))
            feats = padded.max(dim=1).values
        return self.out(self.dropout(feats))


def _batches(encoded: Sequence[Sequence[int]], order: Sequence[int], batch_size: int) -> list[list[int]]:
    return [list(order[i : i + batch_size]) for i in range(0, len(order), batch_size)]


def _grouped_batches(encoded: Sequence[Sequence[int]], order: list[int], batch_size: int, gen: torch.Generator
                     ) -> list[list[int]]:
    """Shuffled batches of similar-length texts: windows of 50 batches are sorted by length, cut
    into batches, and the batches shuffled, so little time goes into padding."""
    window = batch_size * 50
    batches: list[list[int]] = []
    for lo in range(0, len(order), window):
        chunk = sorted(order[lo : lo + window], key=lambda i: len(encoded[i]))
        batches += _batches(encoded, chunk, batch_size)
    perm = torch.randperm(len(batches), generator=gen).tolist()
    return [batches[i] for i in perm]


def _collate(encoded: Sequence[Sequence[int]], rows: Sequence[int], device: torch.device
             ) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(encoded[r]) for r in rows], dtype=torch.long)
    ids = torch.zeros(len(rows), int(lengths.max()), dtype=torch.long)
    for j, r in enumerate(rows):
        ids[j, : lengths[j]] = torch.tensor(encoded[r], dtype=torch.long)
    return ids.to(device, non_blocking=True), lengths


def initial_embeddings(vocab: Vocabulary, lookup: Callable[[str], np.ndarray | None], dim: int, seed: int
                       ) -> tuple[torch.Tensor, int]:
    """Rows from ``lookup`` where it has a vector, small random ones elsewhere; returns (weights, found)."""
    gen = np.random.default_rng(seed)
    weights = gen.normal(0.0, 0.1, size=(len(vocab), dim)).astype(np.float32)
    weights[0] = 0.0
    found = 0
    for i, word in enumerate(vocab.words[2:], start=2):
        vec = lookup(word)
        if vec is not None:
            weights[i] = vec
            found += 1
    return torch.from_numpy(weights), found


@dataclass
class TrainResult:
    model: RecurrentClassifier
    history: list[dict[str, float]]
    best_epoch: int
    resumed_from_epoch: int
    seconds: float
    device: str


def train_rnn(
    train_ids: Sequence[Sequence[int]], train_y: Sequence[int], val_ids: Sequence[Sequence[int]],
    val_y: Sequence[int], *, vocab_size: int, classes: list[str], params: RNNParams,
    embeddings: torch.Tensor | None = None, checkpoint_dir: Path | None = None, device: str = "auto",
    progress: bool = True,
) -> TrainResult:
    """Train with Adam + clipping + early stopping; checkpoint each epoch and resume if one exists."""
    from tqdm.auto import tqdm

    params.validate()
    dev = pick_device(device)
    seed_everything(params.seed)
    model = RecurrentClassifier(vocab_size, len(classes), params)
    if embeddings is not None:
        model.embedding.weight.data.copy_(embeddings)
    model.embedding.weight.requires_grad_(not params.freeze_embeddings)
    model.to(dev)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=params.learning_rate,
                                 weight_decay=params.weight_decay)
    use_amp = dev.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    loss_fn = nn.CrossEntropyLoss()
    history: list[dict[str, float]] = []
    best_f1, best_epoch, best_state, start_epoch = -1.0, 0, None, 0
    ckpt = checkpoint_dir / "checkpoint.pt" if checkpoint_dir else None
    if ckpt is not None and ckpt.is_file():
        state = load_checkpoint(ckpt, dev, model, optimizer, scaler)
        best_state = state["best_model"]
        history = json.loads(state["history"])
        best_f1, best_epoch, start_epoch = float(state["best_f1"]), int(state["best_epoch"]), int(state["epoch"])
    resumed_from = start_epoch
    y_train = torch.tensor(list(train_y), dtype=torch.long)
    start = time.perf_counter()
    stale = sum(1 for h in history if h["epoch"] > best_epoch)
    for epoch in range(start_epoch + 1, params.epochs + 1):
        if stale >= params.patience:
            break
        model.train()
        # The shuffle order comes from a generator seeded by (seed, epoch): a resumed run sees
        # the same batches as an uninterrupted one.
        gen = torch.Generator().manual_seed(params.seed * 1000 + epoch)
        order = torch.randperm(len(train_ids), generator=gen).tolist()
        total_loss, seen = 0.0, 0
        bar = tqdm(_grouped_batches(train_ids, order, params.batch_size, gen), desc=f"epoch {epoch}/{params.epochs}",
                   unit="batch", disable=not progress, leave=False)
        for rows in bar:
            ids, lengths = _collate(train_ids, rows, dev)
            target = y_train[rows].to(dev)
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device_type=dev.type, dtype=torch.float16, enabled=use_amp):
                loss = loss_fn(model(ids, lengths), target)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), params.clip_norm)
            scaler.step(optimizer)
            scaler.update()
            total_loss += float(loss.detach()) * len(rows)
            seen += len(rows)
            bar.set_postfix(loss=f"{total_loss / seen:.4f}")
        bar.close()
        probs = predict_proba(model, val_ids, batch_size=256, device=dev)
        pred = [classes[i] for i in probs.argmax(axis=1)]
        truth = [classes[i] for i in val_y]
        val = classification_metrics(truth, pred, classes)
        val_loss = float(-np.log(np.clip(probs[np.arange(len(val_y)), list(val_y)], 1e-12, None)).mean())
        record = {"epoch": epoch, "train_loss": round(total_loss / max(1, seen), 5), "val_loss": round(val_loss, 5),
                  "val_accuracy": val["accuracy"], "val_macro_f1": val["macro_f1"],
                  "seconds": round(time.perf_counter() - start, 2)}
        history.append(record)
        if val["macro_f1"] > best_f1:
            best_f1, best_epoch, stale = val["macro_f1"], epoch, 0
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
        if progress:
            tqdm.write(f"epoch {epoch}: train_loss={record['train_loss']:.4f} val_loss={val_loss:.4f} "
                       f"val_acc={val['accuracy']:.4f} val_macro_f1={val['macro_f1']:.4f}"
                       + (" *" if best_epoch == epoch else ""), file=sys.stderr)
        if ckpt is not None:
            save_checkpoint(ckpt, {
                "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
                "best_model": best_state, "history": json.dumps(history), "best_f1": best_f1,
                "best_epoch": best_epoch, "epoch": epoch, "torch_rng": torch.get_rng_state(),
            })
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return TrainResult(model, history, best_epoch, resumed_from, round(time.perf_counter() - start, 2), str(dev))


@torch.inference_mode()
def predict_proba(model: RecurrentClassifier, encoded: Sequence[Sequence[int]], *, batch_size: int = 256,
                  device: torch.device | None = None) -> np.ndarray:
    """Class probabilities; batches are formed from texts of similar length, order is restored."""
    dev = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    out = np.zeros((len(encoded), model.out.out_features), dtype=np.float32)
    for rows in _batches(encoded, order, batch_size):
        ids, lengths = _collate(encoded, rows, dev)
        with torch.autocast(device_type=dev.type, dtype=torch.float16, enabled=dev.type == "cuda"):
            logits = model(ids, lengths)
        out[rows] = torch.softmax(logits.float(), dim=-1).cpu().numpy()
    model.train(was_training)
    return out


def save_weights(model: RecurrentClassifier, path: Path) -> None:
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, path)


def load_weights(path: Path, vocab_size: int, num_classes: int, params: RNNParams, device: torch.device
                 ) -> RecurrentClassifier:
    model = RecurrentClassifier(vocab_size, num_classes, params)
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    model.to(device)
    model.eval()
    return model


def count_parameters(model: nn.Module) -> int:
    return int(sum(math.prod(p.shape) for p in model.parameters()))
