"""Why a classifier chose its label: occlusion, token by token (any classifier), or the class
activation map (convolutional ones). Both give one :class:`TokenScore` per token.

A token's score is the predicted class's probability for the whole text minus its probability with
that one token removed: positive when the token pushed the text towards the label. The inputs are
token lists (the model's own tokenization), so removing a token is exact: no re-tokenizing of an
edited text that could split differently. The text and all its one-token-removed variants are
predicted together, in one batch (:func:`occlusion_inputs` builds them, :func:`occlusion_scores`
reads the answers back).

The class activation map needs one input per text (:func:`activation_inputs`); each token's score is its
share of the predicted class's logit through the max-pooled feature maps (:func:`activation_scores`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ._model import ActivationOf, Prediction, Tokens

__all__ = ["TokenScore", "activation_inputs", "activation_scores", "occlusion_inputs", "occlusion_scores"]


@dataclass(frozen=True)
class TokenScore:
    """One token of a text, where it stands in the text (character offsets), and its occlusion score."""

    token: str
    start: int
    end: int
    score: float


def occlusion_inputs(tokens: Sequence[str]) -> list[Tokens]:
    """The whole text's tokens, then each variant with one token removed: ``1 + len(tokens)`` inputs."""
    full = tuple(tokens)
    return [full, *(full[:i] + full[i + 1 :] for i in range(len(full)))]


def occlusion_scores(spans: Sequence[tuple[str, int, int]], predictions: Sequence[Prediction]
                     ) -> tuple[Prediction, list[TokenScore]]:
    """The whole text's prediction and each token's score, from the predictions of
    :func:`occlusion_inputs` (same order) and the token ``spans`` (``Tokenizer.spans``)."""
    if len(predictions) != len(spans) + 1:
        raise ValueError(f"expected {len(spans) + 1} predictions for {len(spans)} tokens, got {len(predictions)}")
    full, *without = predictions
    p = full.probabilities[full.label]
    return full, [TokenScore(token, start, end, p - w.probabilities[full.label])
                  for (token, start, end), w in zip(spans, without, strict=True)]


def activation_inputs(spans: Sequence[Sequence[tuple[str, int, int]]]) -> list[ActivationOf]:
    """One class-activation request per text, from its token ``spans`` (``Tokenizer.spans``)."""
    return [ActivationOf(tuple(token for token, _, _ in s)) for s in spans]


def activation_scores(spans: Sequence[tuple[str, int, int]], prediction: Prediction
                      ) -> tuple[Prediction, list[TokenScore]]:
    """The prediction (without its raw activation) and each token's class activation score."""
    if prediction.activation is None or len(prediction.activation) != len(spans):
        raise ValueError(f"expected a class activation for each of the {len(spans)} tokens")
    scores = prediction.activation
    return (Prediction(prediction.label, prediction.probabilities),
            [TokenScore(token, start, end, score) for (token, start, end), score in zip(spans, scores, strict=True)])
