"""Translation quality: sacreBLEU's corpus BLEU and chrF, overall and per data source."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def translation_metrics(hypotheses: Sequence[str], references: Sequence[str], groups: Sequence[str] | None = None
                        ) -> dict[str, Any]:
    """``{"bleu", "chrf", "sentences", "signature", "by_source": {group: {...}}}``, detokenized text in."""
    import sacrebleu

    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    bleu = sacrebleu.BLEU()
    chrf = sacrebleu.CHRF()
    out: dict[str, Any] = {
        "bleu": round(bleu.corpus_score(list(hypotheses), [list(references)]).score, 2),
        "chrf": round(chrf.corpus_score(list(hypotheses), [list(references)]).score, 2),
        "sentences": len(hypotheses),
        "signature": {"bleu": str(bleu.get_signature()), "chrf": str(chrf.get_signature())},
    }
    if groups is not None and len(set(groups)) > 1:
        out["by_source"] = {}
        for g in sorted(set(groups)):
            rows = [i for i, x in enumerate(groups) if x == g]
            hyp, ref = [hypotheses[i] for i in rows], [references[i] for i in rows]
            out["by_source"][g] = {"bleu": round(bleu.corpus_score(hyp, [ref]).score, 2),
                                   "chrf": round(chrf.corpus_score(hyp, [ref]).score, 2), "sentences": len(rows)}
    return out
