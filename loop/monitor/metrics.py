"""What each monitoring metric means: declared once, read by the README test and the report.

Keys are metrics.jsonl names with placeholders: `<set>` is `rollouts` (all the round's
samples), `kept` (what the update trains on) or `eval` (the held-out k samples); `<conf>` is
`sequence` or `consistency`; `<stage>` a filter stage; `<part>` a part of the monitoring.
"""

from __future__ import annotations

import re

SETS = ("rollouts", "kept", "eval")
CONFIDENCES = ("sequence", "consistency")

MEANINGS: dict[str, str] = {
    "diversity/<set>/distinct_1": "unique words / all words (higher = more varied)",
    "diversity/<set>/distinct_2": "unique word bigrams / all bigrams",
    "diversity/<set>/distinct_3": "unique word trigrams / all trigrams",
    "diversity/<set>/self_bleu": "mean sacreBLEU of each sampled text against the others (100 = all identical)",
    "diversity/<set>/embed_within": "mean cosine distance between sentence embeddings of one prompt's samples",
    "diversity/<set>/embed_across": "mean cosine distance between sentence embeddings of different prompts' samples",
    "diversity/<set>/answers_distinct": "distinct final answers per prompt (answers extracted as the verifiers do)",
    "diversity/<set>/answer_entropy": "entropy (bits) of a prompt's final-answer distribution, averaged over prompts",
    "diversity/<set>/identical_share": "share of prompts whose samples are all the same text",
    "diversity/<set>/nll_per_token": "mean negative log-prob per generated token (nats): a policy-entropy proxy",
    "eval/headroom": "pass@k - pass@1 on eval: what sampling still finds that greedy misses (exploration headroom)",
    "calibration/<conf>/ece": "expected calibration error: count-weighted |accuracy - confidence| over equal-width bins",
    "calibration/<conf>/brier": "mean (confidence - correct)^2",
    "calibration/<conf>/auroc": "chance a right sample is more confident than a wrong one (0.5 = confidence says nothing)",
    "calibration/<conf>/mean_confidence": "mean confidence (compare with eval/mean@k, the share right)",
    "filter/near_dup/dropped_earlier": "kept examples dropped as near-copies (MinHash LSH) of earlier rounds' kept ones",
    "filter/near_dup/dropped_round": "kept examples dropped as near-copies of others kept this round",
    "filter/contamination/dropped": "kept examples dropped for sharing an n-gram with an eval prompt or answer",
    "data/train_eval_overlap": "share of training prompts sharing an n-gram with the eval split (round 0)",
    "funnel/<stage>": "samples left after each filter stage: generated, gates, threshold, band, exact dup, K cap, "
                      "near dup, contamination",
    "monitor/<part>_seconds": "seconds spent on monitoring (rollouts, hygiene, eval) inside the filter and evaluate phases",
    "monitor/rollouts_background_seconds": "seconds the background worker spent on the rollouts' diversity while the "
                                           "filter ran (then not in monitor/rollouts_seconds)",
}

CONFIDENCE_MEANINGS = {
    "sequence": "the sample's per-token probability under the policy (geometric mean, from the recorded log-probs)",
    "consistency": "the share of the prompt's k samples whose final answer equals this sample's",
}


def meaning(key: str) -> str | None:
    """The meaning of a concrete metrics key (`diversity/kept/distinct_2`), or None."""
    for pattern, text in MEANINGS.items():
        regex = "^" + re.escape(pattern).replace(re.escape("<set>"), "(?:" + "|".join(SETS) + ")") \
            .replace(re.escape("<conf>"), "(?:" + "|".join(CONFIDENCES) + ")") \
            .replace(re.escape("<stage>"), "[^/]+").replace(re.escape("<part>"), "[a-z]+") + "$"
        if re.match(regex, key):
            return text
    return None
