"""Neural text classifiers in PyTorch: recurrent (Elman RNN, LSTM or GRU) or convolutional (Kim 2014),
one network per ``params.cell``, trained, checkpointed and served by the same code here.

Packed variable-length sequences, optional bidirectionality, embeddings random or taken from a
vectors model (word2vec or fastText, whose subwords cover unseen words), Adam with gradient
clipping, early stopping on validation macro-F1, a checkpoint every epoch that a restarted run
resumes from, mixed precision on CUDA. Saved as a ``state_dict`` plus JSON config and a
vocabulary; loading uses ``torch.load(weights_only=True)``: no arbitrary unpickling.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from ..text import Tokenizer
from ..torch_utils import pick_device, seed_everything
from ..training import ResumableRun
from ._metrics import classification_metrics
from ._params import RNNParams

__all__ = ["ConvClassifier", "NeuralClassifier", "RecurrentClassifier", "RecurrentRuntime", "TrainResult",
           "Vocabulary", "build_network", "initial_embeddings", "predict_proba", "train_rnn"]

PAD, UNK = "<pad>", "<unk>"
VOCAB_FILE, WEIGHTS_FILE = "vocab.txt", "model.pt"


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


class ConvClassifier(nn.Module):
    """Kim (2014): embeddings -> parallel 1-D convolutions of several widths -> ReLU -> max over time
    -> dropout -> linear.

    Texts are right-padded with ``<pad>`` (a zero vector) to the widest kernel, so a one-word text has
    at least one window of every width. Only the windows a text alone would have are pooled (the
    others are masked to -inf): a prediction does not depend on the longer texts batched with it.
    """

    def __init__(self, vocab_size: int, num_classes: int, p: RNNParams) -> None:
        super().__init__()
        self.kernel_sizes, self.stride, self.padding = list(p.kernel_sizes), p.stride, p.padding
        self.embedding = nn.Embedding(vocab_size, p.embedding_dim, padding_idx=0)
        # Multichannel: a second, frozen copy of the initial embeddings (train_rnn fills both).
        self.static = nn.Embedding(vocab_size, p.embedding_dim, padding_idx=0).requires_grad_(False) \
            if p.multichannel else None
        self.convs = nn.ModuleList(nn.Conv1d(p.embedding_dim, p.feature_maps, k, stride=p.stride, padding=p.padding)
                                   for k in self.kernel_sizes)
        self.dropout = nn.Dropout(p.dropout)
        self.out = nn.Linear(p.feature_maps * len(self.kernel_sizes), num_classes)

    def feature_maps(self, ids: torch.Tensor, lengths: torch.Tensor) -> list[torch.Tensor]:
        """Each width's ReLU maps, ``(batch, maps, windows)``, with the windows past a text's own end at -inf."""
        widest = max(self.kernel_sizes)
        if ids.shape[1] < widest:
            ids = nn.functional.pad(ids, (0, widest - ids.shape[1]), value=0)
        # Conv1d wants (batch, channels, time); with two channels, each filter reads both and adds (Kim 2014).
        channels = [self.embedding] if self.static is None else [self.embedding, self.static]
        embs = [self.dropout(e(ids)).transpose(1, 2) for e in channels]
        padded_len = lengths.clamp(min=widest).to(ids.device)
        maps = []
        for k, conv in zip(self.kernel_sizes, self.convs, strict=True):
            act = torch.relu(sum((conv(e) for e in embs[1:]), conv(embs[0])))
            windows = (padded_len + 2 * self.padding - k) // self.stride + 1
            valid = torch.arange(act.shape[2], device=act.device)[None, :] < windows[:, None]
            maps.append(act.masked_fill(~valid[:, None, :], float("-inf")))
        return maps

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        feats = torch.cat([m.max(dim=2).values for m in self.feature_maps(ids, lengths)], dim=1)
        return self.out(self.dropout(feats))

    @torch.inference_mode()
    def class_activation(self, ids: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The 1-D class activation map: (logits, ``(batch, tokens)`` scores of the winning class).

        For each feature map, the window that won its max contributes that map's value times the
        winning class's output weight for it; the contribution is spread evenly over the tokens of
        the window (a word in a window of 3 gets a third), so the scores of a text sum to its winning
        logit minus the output bias (less the shares of windows that fall on padding, which are dropped).
        """
        maps = self.feature_maps(ids, lengths)
        pooled = [m.max(dim=2) for m in maps]
        logits = self.out(torch.cat([p.values for p in pooled], dim=1))
        weights = self.out.weight[logits.argmax(dim=1)]  # (batch, all maps)
        scores = torch.zeros(ids.shape[0], ids.shape[1] + 2 * self.padding + max(self.kernel_sizes),
                             device=ids.device)
        offset = 0
        rows = torch.arange(ids.shape[0], device=ids.device)
        for k, p in zip(self.kernel_sizes, pooled, strict=True):
            n = p.values.shape[1]
            contrib = p.values * weights[:, offset : offset + n] / k  # (batch, maps)
            start = p.indices * self.stride  # window start in padded coordinates (padding on the left)
            for j in range(k):
                scores.index_put_((rows[:, None].expand_as(start), start + j), contrib, accumulate=True)
            offset += n
        scores = scores[:, self.padding : self.padding + ids.shape[1]]
        real = torch.arange(ids.shape[1], device=ids.device)[None, :] < lengths.to(ids.device)[:, None]
        return logits, scores * real


def build_network(vocab_size: int, num_classes: int, p: RNNParams) -> RecurrentClassifier | ConvClassifier:
    """The network ``p.cell`` names: everything else (training, checkpoints, serving) is shared."""
    return ConvClassifier(vocab_size, num_classes, p) if p.cell == "cnn" else RecurrentClassifier(
        vocab_size, num_classes, p)


NeuralClassifier = RecurrentClassifier | ConvClassifier


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
    model: NeuralClassifier
    history: list[dict[str, float]]
    best_epoch: int
    resumed_from_epoch: int
    seconds: float
    device: str
    run: ResumableRun  # finish() it once the model is saved


def train_rnn(
    train_ids: Sequence[Sequence[int]], train_y: Sequence[int], val_ids: Sequence[Sequence[int]],
    val_y: Sequence[int], *, vocab_size: int, classes: list[str], params: RNNParams,
    embeddings: torch.Tensor | None = None, checkpoint_dir: Path | None = None, device: str = "auto",
    progress: bool = True,
) -> TrainResult:
    """Train with Adam + clipping + early stopping on validation macro-F1; with ``checkpoint_dir``, a
    checkpoint every epoch that a restarted run resumes from."""
    from tqdm.auto import tqdm

    params.validate()
    dev = pick_device(device)
    seed_everything(params.seed)
    model = build_network(vocab_size, len(classes), params)
    if embeddings is not None:
        model.embedding.weight.data.copy_(embeddings)
        if isinstance(model, ConvClassifier) and model.static is not None:
            model.static.weight.data.copy_(embeddings)
    elif params.multichannel:
        raise ValueError("multichannel needs initial embeddings (--vectors): its fixed channel is a copy of them")
    model.embedding.weight.requires_grad_(not params.freeze_embeddings)
    model.to(dev)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=params.learning_rate,
                                 weight_decay=params.weight_decay)
    use_amp = dev.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    loss_fn = nn.CrossEntropyLoss()
    run = ResumableRun(checkpoint_dir, model, optimizer, scaler, dev)
    progress_state = run.progress
    y_train = torch.tensor(list(train_y), dtype=torch.long)
    for epoch in range(progress_state.done + 1, params.epochs + 1):
        if run.since_best >= params.patience:
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
                  "val_accuracy": val["accuracy"], "val_macro_f1": val["macro_f1"], "seconds": round(run.elapsed, 2)}
        progress_state.history.append(record)
        progress_state.done = epoch
        best = run.improved(val["macro_f1"])
        if progress:
            tqdm.write(f"epoch {epoch}: train_loss={record['train_loss']:.4f} val_loss={val_loss:.4f} "
                       f"val_acc={val['accuracy']:.4f} val_macro_f1={val['macro_f1']:.4f}" + (" *" if best else ""),
                       file=sys.stderr)
        run.checkpoint()
    run.restore_best()
    model.eval()
    return TrainResult(model, progress_state.history, progress_state.best_at, run.resumed_from,
                       round(run.elapsed, 2), str(dev), run)


@torch.inference_mode()
def predict_proba(model: NeuralClassifier, encoded: Sequence[Sequence[int]], *, batch_size: int = 256,
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


class RecurrentRuntime:
    """A trained recurrent classifier with its vocabulary: predictions over raw texts, and its files
    (``model.pt``, a ``state_dict`` read with ``weights_only=True``, and ``vocab.txt``) both ways."""

    backend = "rnn"

    def __init__(self, model: NeuralClassifier, vocab: Vocabulary, params: RNNParams, tokenizer: Tokenizer
                 ) -> None:
        self.model, self.vocab, self.params, self.tokenizer = model, vocab, params, tokenizer
        self.device = next(model.parameters()).device
        self.device_name = str(self.device)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return self.predict_proba_tokens(list(self.tokenizer.tokenize_many(texts)))

    def predict_proba_tokens(self, token_lists: Sequence[Sequence[str]]) -> np.ndarray:
        """:meth:`predict_proba` of texts already split by the model's tokenizer."""
        encoded = [self.vocab.encode(tokens, self.params.max_length) for tokens in token_lists]
        return predict_proba(self.model, encoded, device=self.device)

    @property
    def convolutional(self) -> bool:
        return isinstance(self.model, ConvClassifier)

    def class_activation_tokens(self, token_lists: Sequence[Sequence[str]]) -> tuple[np.ndarray, list[np.ndarray]]:
        """Class probabilities and, per text, each token's class activation for the winning class
        (:meth:`ConvClassifier.class_activation`); tokens past ``max_length`` score 0."""
        if not isinstance(self.model, ConvClassifier):
            raise TypeError("class activation maps need a convolutional model (cell 'cnn')")
        encoded = [self.vocab.encode(tokens, self.params.max_length) for tokens in token_lists]
        probs = np.zeros((len(encoded), self.model.out.out_features), dtype=np.float32)
        maps: list[np.ndarray] = [np.zeros(0, dtype=np.float32)] * len(encoded)
        was_training = self.model.training
        self.model.eval()
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        for rows in _batches(encoded, order, 256):
            ids, lengths = _collate(encoded, rows, self.device)
            logits, scores = self.model.class_activation(ids, lengths)
            probs[rows] = torch.softmax(logits.float(), dim=-1).cpu().numpy()
            for j, r in enumerate(rows):
                full = np.zeros(len(token_lists[r]), dtype=np.float32)  # an empty text has no token to score
                kept = min(len(full), int(lengths[j]))
                full[:kept] = scores[j, :kept].float().cpu().numpy()
                maps[r] = full
        self.model.train(was_training)
        return probs, maps

    def save(self, folder: Path) -> None:
        torch.save({k: v.detach().cpu() for k, v in self.model.state_dict().items()}, folder / WEIGHTS_FILE)
        (folder / VOCAB_FILE).write_text("\n".join(self.vocab.words), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path, params: RNNParams, tokenizer: Tokenizer, num_classes: int, device: str
             ) -> RecurrentRuntime:
        vocab = Vocabulary((folder / VOCAB_FILE).read_text(encoding="utf-8").split("\n"))
        model = build_network(len(vocab), num_classes, params)
        model.load_state_dict(torch.load(folder / WEIGHTS_FILE, map_location="cpu", weights_only=True))
        model.to(pick_device(device)).eval()
        return cls(model, vocab, params, tokenizer)

