"""Data hygiene (near-dups, contamination) and alarm rules on hand-made inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from datasets import Dataset

from loop.config import ConfigError, validate
from loop.monitor.alarms import check_alarms, holds, read_alarms, record_alarms
from loop.monitor.config import AlarmRule, Condition, MonitorConfig, default_alarms
from loop.monitor import hygiene
from loop.monitor.hygiene import EvalNgrams, MinHasher, NearDupIndex, minhash_signatures, shingles
from loop.monitor.monitor import Monitor

LONG = ("first add the two tens to get forty then add the ones to get seven so the total is forty seven "
        "and we check it by subtracting seven from forty seven which leaves forty as expected")


def _near_copy(text: str) -> str:
    words = text.split()
    words[-1] = "predicted"  # one word of 37 changed
    return " ".join(words)


def test_lsh_finds_a_planted_near_duplicate_within_the_round():
    texts = [LONG, "an unrelated short answer about cats and dogs playing", _near_copy(LONG)]
    index = NearDupIndex(threshold=0.8, num_perm=128)
    keep, of_earlier, of_round = index.admit(minhash_signatures(texts, 128, 3))
    assert keep == [True, True, False] and (of_earlier, of_round) == (0, 1)


def test_lsh_finds_a_copy_of_an_earlier_round_and_keeps_distinct_texts():
    index = NearDupIndex(threshold=0.8, num_perm=128)
    index.add(minhash_signatures([LONG], 128, 3))
    keep, of_earlier, _ = index.admit(minhash_signatures([_near_copy(LONG), "something else entirely new"], 128, 3))
    assert keep == [False, True] and of_earlier == 1


def test_a_word_for_word_copy_of_an_earlier_round_is_dropped_without_an_lsh_query():
    index = NearDupIndex(threshold=0.8, num_perm=128)
    index.add(minhash_signatures([LONG, "an older answer kept in round one"], 128, 3))
    asked = []
    query = index._lsh.query  # datasketch's: counted, not replaced
    index._lsh.query = lambda minhash: asked.append(1) or query(minhash)
    texts = [LONG, _near_copy(LONG), "a new answer of this round", "a new answer of this round", LONG]
    keep, of_earlier, of_round = index.admit(minhash_signatures(texts, 128, 3))
    assert keep == [False, False, True, False, False] and (of_earlier, of_round) == (3, 1)
    assert len(asked) == 3  # the two copies of LONG were not looked up
    index.keep_only([])  # the round kept nothing: its new answer is forgotten, copy and all
    assert index.admit(minhash_signatures(["a new answer of this round"], 128, 3))[0] == [True]


def test_signatures_for_many_texts_at_once_are_datasketchs_own(monkeypatch):
    from datasketch import MinHash

    texts = [LONG, _near_copy(LONG), "", "one", "two words", "a b c d e f g h " * 30]
    for num_perm in (16, 64, 128):
        expected = np.stack([MinHash.bulk([shingles(t, 3)], num_perm=num_perm, scheme="affine32")[0].hashvalues
                             for t in texts])
        assert np.array_equal(minhash_signatures(texts, num_perm, 3), expected)
    monkeypatch.setattr(hygiene, "_SHINGLES_AT_ONCE", 5)  # texts split over many tables
    assert np.array_equal(minhash_signatures(texts, 128, 3), expected)


def test_minhasher_hashes_a_text_once_while_it_remembers_it_and_gives_datasketch_signatures():
    texts = [LONG, "a b c d e", LONG, "x y z"]
    hasher = MinHasher(128, 3, capacity=2)
    assert np.array_equal(hasher(texts), minhash_signatures(texts, 128, 3))
    assert hasher.hashed == 3  # LONG once
    assert np.array_equal(hasher(["x y z"]), minhash_signatures(["x y z"], 128, 3)) and hasher.hashed == 3
    assert np.array_equal(hasher([LONG]), minhash_signatures([LONG], 128, 3))
    assert hasher.hashed == 4  # capacity 2: the oldest, LONG, was forgotten
    assert hasher([]).shape == (0, 128)


def test_contamination_ngrams_catch_a_copy_but_not_a_different_sum():
    eval_texts = ["Q:3+5+2+7", "What is the capital of France? Answer with one word only please.", "42"]
    ngrams = EvalNgrams(eval_texts, n=13)
    assert ngrams.overlaps("Earlier we saw q: 3 + 5 + 2 + 7, easy")  # spacing and case do not hide it
    assert not ngrams.overlaps("Q:3+5+2+8")
    assert not ngrams.overlaps("Q:3-5+2+7")
    assert not ngrams.overlaps("the answer is 42")  # a bare short answer is too generic to test
    assert ngrams.overlaps("Solve: What is the capital of France? Answer with one word only please")  # 13 tokens
    assert not ngrams.overlaps("what is the capital of Spain")


def _monitor(tmp_path, **cfg) -> Monitor:
    return Monitor(MonitorConfig.model_validate({"embedding_model": None, **cfg}), tmp_path, 0, print)


def test_hygiene_drops_a_planted_eval_copy_and_an_earlier_rounds_near_copy(tmp_path):
    eval_texts = ["Natalia sold clips to 48 of her friends in April and then half as many in May", "72"]
    monitor = _monitor(tmp_path, near_dup={"threshold": 0.8, "num_perm": 128})
    first = Dataset.from_dict({"prompt": ["p1", "p2"], "completion": [LONG, "a short clean answer of a few words"],
                               "prompt_id": ["a", "b"]})
    kept, metrics = monitor.hygiene(1, first, eval_texts)
    assert len(kept) == 2 and metrics["filter/near_dup/dropped_earlier"] == 0
    assert (tmp_path / "round_001" / "monitor" / "near_dup_signatures.npy").exists()
    second = Dataset.from_dict({
        "prompt": ["p3", "p4", "p5"],
        "completion": [_near_copy(LONG), "she sold clips to 48 of her friends in April and then half as many in May",
                       "a new answer nobody wrote before today"],
        "prompt_id": ["c", "d", "e"]})
    kept, metrics = _monitor(tmp_path, near_dup={"threshold": 0.8, "num_perm": 128}).hygiene(2, second, eval_texts)
    assert kept["prompt_id"][:] == ["e"]
    assert metrics["filter/near_dup/dropped_earlier"] == 1 and metrics["filter/contamination/dropped"] == 1


def test_the_index_kept_across_rounds_decides_as_one_rebuilt_from_files(tmp_path):
    """One monitor through three rounds (the index kept in memory, without the round's
    contamination drops) and a fresh monitor per round (a resume: rebuilt from the saved
    signatures) keep the same examples and count the same drops."""
    eval_texts = ["Natalia sold clips to 48 of her friends in April and then half as many in May"]
    eval_copy = "she sold clips to 48 of her friends in April and then half as many in May, a copy"
    rounds = [[LONG, eval_copy, "a short clean answer of a few words", _near_copy(LONG)],
              [_near_copy(LONG), eval_copy + " again", "a new answer nobody wrote before today", "a short clean answer of a few words"],
              [LONG, "a new answer nobody wrote before today!", eval_copy, "the third round's own new answer here"]]
    kept = {}
    for how in ("kept", "rebuilt"):
        path = tmp_path / how
        live = _monitor(path, near_dup={"threshold": 0.8, "num_perm": 128})
        for r, texts in enumerate(rounds, start=1):
            ds = Dataset.from_dict({"prompt": [f"p{i}" for i in range(len(texts))], "completion": texts,
                                    "prompt_id": [f"{r}-{i}" for i in range(len(texts))]})
            monitor = live if how == "kept" else _monitor(path, near_dup={"threshold": 0.8, "num_perm": 128})
            out, metrics = monitor.hygiene(r, ds, eval_texts)
            kept.setdefault(how, []).append((out["prompt_id"][:], {k: v for k, v in metrics.items() if "seconds" not in k}))
    assert kept["kept"] == kept["rebuilt"]
    assert kept["kept"][1][0] == ["2-2"] and kept["kept"][2][0] == ["3-1", "3-3"]  # earlier copies and eval copies dropped


def test_hygiene_can_be_switched_off(tmp_path):
    monitor = _monitor(tmp_path, near_dup={"enabled": False}, contamination={"enabled": False})
    ds = Dataset.from_dict({"prompt": ["x", "x"], "completion": [LONG, LONG], "prompt_id": ["a", "b"]})
    kept, metrics = monitor.hygiene(1, ds, [LONG])
    assert len(kept) == 2 and not any(k.startswith("filter/") for k in metrics)


def _history(**series) -> list[dict]:
    n = len(next(iter(series.values())))
    return [{"round": r, **{k.replace("__", "/"): v[r] for k, v in series.items() if v[r] is not None}}
            for r in range(n)]


@pytest.mark.parametrize("cond,values,fires", [
    ({"trend": "rising", "rounds": 2}, [0.1, 0.2, 0.3], True),
    ({"trend": "rising", "rounds": 2}, [0.1, 0.3, 0.2], False),
    ({"trend": "rising", "rounds": 3}, [0.1, 0.2, 0.3], False),  # too few rounds yet
    ({"trend": "falling", "rounds": 2, "min_change": 0.05}, [0.9, 0.8, 0.78], False),
    ({"trend": "falling", "rounds": 2, "min_change": 0.05}, [0.9, 0.8, 0.7], True),
    ({"trend": "not_rising", "rounds": 2, "min_change": 0.01}, [0.5, 0.6, 0.505], True),
    ({"trend": "not_rising", "rounds": 2, "min_change": 0.01}, [0.5, 0.5, 0.6], False),
    ({"drop_from": "best", "by": 0.3}, [0.5, 0.9, 0.6], True),
    ({"drop_from": "first", "by": 0.3}, [0.5, 0.9, 0.6], False),
    ({"above": 0.2}, [0.1, 0.1, 0.3], True),
    ({"below": 0.2}, [0.1, 0.1, 0.3], False),
])
def test_condition_on_hand_made_history(cond, values, fires):
    condition = Condition(metric="m/x", **cond)
    assert (holds(condition, _history(m__x=values)) is not None) == fires


def test_a_metric_missing_from_the_latest_round_never_fires():
    assert holds(Condition(metric="m/x", below=1.0), _history(m__x=[0.1, None])) is None
    assert holds(Condition(metric="m/y", below=1.0), _history(m__x=[0.1, 0.2])) is None


COLLAPSE = _history(eval__pass_1=[0.30, 0.42, 0.43, 0.42], filter__stack__accept_rate=[None, 0.2, 0.5, 0.8],
                    diversity__rollouts__distinct_2=[None, 0.30, 0.20, 0.10],
                    diversity__rollouts__answer_entropy=[None, 1.0, 0.9, 0.95])
HEALTHY = _history(eval__pass_1=[0.30, 0.60, 0.75, 0.85], filter__stack__accept_rate=[None, 0.2, 0.5, 0.8],
                   diversity__rollouts__distinct_2=[None, 0.30, 0.20, 0.10],
                   diversity__rollouts__answer_entropy=[None, 1.0, 0.7, 0.5])


def _fix_keys(history):
    return [{k.replace("pass_1", "pass@1"): v for k, v in row.items()} for row in history]


def test_default_rules_fire_on_a_collapse_and_not_on_healthy_learning():
    fired = check_alarms(_fix_keys(COLLAPSE), default_alarms())
    assert [a.rule for a in fired] == ["diversity_collapse"]
    assert "distinct_2 fell 2 rounds" in fired[0].message and fired[0].round == 3
    assert check_alarms(_fix_keys(HEALTHY), default_alarms()) == []


def test_no_headroom_warns_only_while_accuracy_stalls():
    # The shipped demo's seed 0: sampling found nothing greedy did not in round 2 (pass@4 =
    # pass@1), the round its pass@1 jumped 17 points; that is no sign of collapse.
    rising = [{"round": r, "eval/pass@1": acc, "eval/headroom": head}
              for r, acc, head in [(0, 0.38, 0.15), (1, 0.655, 0.095), (2, 0.825, 0.0)]]
    assert check_alarms(rising, default_alarms()) == []
    stalled = rising + [{"round": 3, "eval/pass@1": 0.82, "eval/headroom": 0.0},
                        {"round": 4, "eval/pass@1": 0.825, "eval/headroom": 0.005}]
    assert [a.rule for a in check_alarms(stalled, default_alarms())] == ["no_exploration_headroom"]


def test_accuracy_halved_from_its_best_fires_at_once():
    """configs/demo_collapse.yaml's real curve: 38% at round 0, 3.5% after one round."""
    crash = [{"round": r, "eval/pass@1": acc} for r, acc in enumerate([0.38, 0.035])]
    assert [a.rule for a in check_alarms(crash, default_alarms())] == ["accuracy_drop"]
    assert check_alarms(crash[:1] + [{"round": 1, "eval/pass@1": 0.20}], default_alarms()) == []


def test_alarms_jsonl_holds_one_line_per_round_and_rule(tmp_path):
    fired = check_alarms(_fix_keys(COLLAPSE), default_alarms())
    record_alarms(tmp_path / "alarms.jsonl", fired)
    record_alarms(tmp_path / "alarms.jsonl", fired)  # a resumed round fires again
    rows = read_alarms(tmp_path / "alarms.jsonl")
    assert len(rows) == 1 and rows[0]["rule"] == "diversity_collapse" and rows[0]["action"] == "warn"
    json.loads((tmp_path / "alarms.jsonl").read_text())


MINIMAL = {"model": {"tiny": {}}, "data": {"task": {"train_size": 10, "eval_size": 5}}}


@pytest.mark.parametrize("alarms,message", [
    ([{"name": "x", "when": [{"metric": "a", "above": 1, "below": 0}]}], "exactly one of drop_from, above, below, trend"),
    ([{"name": "x", "when": [{"metric": "a", "above": 1}]}, {"name": "x", "when": [{"metric": "b", "above": 1}]}],
     "x appears twice"),
    ([{"name": "x", "when": [{"metric": "a", "above": 1}], "action": "explode"}], "monitor.alarms.0.action"),
])
def test_bad_alarm_rules_are_config_errors_naming_the_field(alarms, message):
    with pytest.raises(ConfigError, match=message):
        validate({**MINIMAL, "monitor": {"alarms": alarms}})


def test_user_rules_replace_the_defaults():
    cfg = validate({**MINIMAL, "monitor": {"alarms": [{"name": "acc", "when": [{"metric": "eval/pass@1",
                                                                                 "drop_from": "best", "by": 0.2}],
                                                       "action": "stop"}]}})
    assert [r.name for r in cfg.monitor.alarms] == ["acc"] and cfg.monitor.alarms[0].action == "stop"
    assert [r.name for r in validate(MINIMAL).monitor.alarms] == [r.name for r in default_alarms()]
    assert isinstance(cfg.monitor.alarms[0], AlarmRule)
