"""The `math` reward against a red-team review's findings: answers that were scored wrong
(reward hacks accepted, right answers rejected), each with its family.

- Arithmetic left undone ("47+8-15") does not answer a number: it may be the question copied.
- Words after a number: scale words multiply ("1.5 million"); words that change the value
  ("2 dozen", "5 squared", "5 or more") make it no plain number.
- Multi-part answers, multiple-choice letters, `e` and `i`, "final answer" mentions, missing
  references, thousands commas and Unicode minus, hedges joined by an operator.
"""

from __future__ import annotations

import pytest

from rewards import MathReward, extract_answer


@pytest.fixture(scope="module")
def math_reward():
    with MathReward(timeout_s=5.0) as reward:
        yield reward


def boxed(answer: str) -> str:
    return f"So the answer is $\\boxed{{{answer}}}$."


def score(reward: MathReward, completion: str, reference) -> float | None:
    (verdict,) = reward.verdicts(["q"], [completion], reference_answer=[reference])
    return verdict.score


# (completion, reference, expected score)
UNEVALUATED = [
    ("The answer is 47+8-15.", "40", 0.0),
    (boxed("47+8-15"), "40", 0.0),
    ("The answer is 47 + 8 - 15", "40", 0.0),
    (boxed("48 + 48/2"), "72", 0.0),
    (boxed(r"3 \times 4"), "12", 0.0),
    (boxed(r"12 \div 3"), "4", 0.0),
    (boxed(r"\frac{48+24}{2}"), "36", 0.0),
    (boxed("x = 48 + 24"), "72", 0.0),
    (boxed(r"2^{10} - 1"), "1023", 0.0),
    # one value: a fraction, a negative, a power, a root, scientific notation
    (boxed(r"\frac{6}{2}"), "3", 1.0),
    (boxed("6/2"), "3", 1.0),
    (boxed("-5"), "-5", 1.0),
    (boxed(r"-\frac{3}{4}"), "-0.75", 1.0),
    (boxed("2^{10}"), "1024", 1.0),
    (boxed(r"\sqrt{16}"), "4", 1.0),
    (boxed(r"2 \times 10^{3}"), "2000", 1.0),
    (boxed(r"1.2 \cdot 10^{-3}"), "0.0012", 1.0),
    ("The answer is 2e3", "2000", 1.0),
    # the working followed by its value answers it
    (boxed("48 + 24 = 72"), "72", 1.0),
    # a reference that is not a number is compared as before
    (boxed(r"\sqrt{2}+1"), r"1+\sqrt{2}", 1.0),
    (boxed("4i+3"), "3+4i", 1.0),
]

WORDS_AFTER_A_NUMBER = [
    ("The answer is 1.5 million dollars.", "1500000", 1.0),
    ("The answer is 1.5 million dollars.", "1.5", 0.0),
    ("The answer is 5 thousand.", "5000", 1.0),
    ("The answer is 5 thousand.", "5", 0.0),
    ("#### 3 billion", "3", 0.0),
    ("#### 3 Billion", "3000000000", 1.0),
    (boxed(r"5 \text{ thousand}"), "5", 0.0),
    (boxed(r"5 \text{ thousand}"), "5000", 1.0),
    ("The answer is 2 dozen.", "2", 0.0),
    ("The answer is 5 squared.", "5", 0.0),
    (boxed(r"5 \text{ squared}"), "5", 0.0),
    ("The answer is 3 cubed", "3", 0.0),
    ("The answer is 4 factorial", "4", 0.0),
    ("The answer is 2 thirds", "2", 0.0),
    ("The answer is 5 hundredths", "5", 0.0),
    ("The answer is 5 half", "5", 0.0),
    ("The answer is 5 or more", "5", 0.0),
    ("The answer is 5 more than x.", "5", 0.0),
    (boxed("5 is wrong"), "5", 0.0),
    ("The answer is 3 Pi", "3", 0.0),
    ("The answer is 3 PI", "3", 0.0),
    # units still are units
    ("The answer is 72 cm.", "72", 1.0),
    ("The answer is 2 degrees", "2", 1.0),
    ("The answer is 25 percent.", "25", 1.0),
    ("The answer is 5 more apples.", "5", 1.0),
    ("The answer is 1/2 cup.", "0.5", 1.0),
    (boxed(r"\text{5 dollars}"), "5", 1.0),
    (boxed(r"5 \text{ cm}^2"), "5", 1.0),
]

MULTI_PART = [
    (r"Step 1 gives $\boxed{7}$. Hence $\boxed{2, 3}$.", "2,3", 1.0),
    (r"Step 1 gives $\boxed{7}$. Hence $\boxed{x = 2, 3}$.", "x=2, 3", 1.0),
    (r"Step 1 gives $\boxed{7}$. Hence $\boxed{\{2, 3\}}$.", "2, 3", 1.0),
    (r"(a) The area is \boxed{12}. (b) The perimeter is \boxed{14}.", "12, 14", 1.0),
    # a repeated value is read as a set, as math-verify compares solution lists
    (boxed("2, 2"), "2", 1.0),
    (boxed("2, 2, 3"), "2, 3", 1.0),
]

CHOICES = [
    (boxed(r"\text{C}"), "C", 1.0),
    (boxed(r"\text{(C)}"), "C", 1.0),
    (boxed("C"), r"\text{(C)}", 1.0),
    (boxed("(C)"), r"\text{(C)}", 1.0),
    (boxed(r"\textbf{(C)}"), "C", 1.0),
    (boxed(r"\mathrm{(C)}"), "(C)", 1.0),
    ("The answer is (C) 12", "C", 1.0),
    ("The answer is C) 12", "C", 1.0),
    ("Answer: C", "C", 1.0),
    ("**Answer:** (C)", "C", 1.0),
    # wrong letters, several letters
    (boxed("B"), "C", 0.0),
    (boxed(r"\text{(B)}"), r"\text{(C)}", 0.0),
    ("The answer is (B) 12", "C", 0.0),
    (boxed("A, C"), "C", 0.0),
    (boxed(r"\text{(A)(B)(C)(D)}"), "A", 0.0),
    (boxed("(A) (B) (C)"), "A", 0.0),
    (boxed("12"), "C", 0.0),
    # an option's value against a value reference
    ("The answer is (C) 12", "12", 1.0),
    ("The answer is (C) 12", "13", 0.0),
]

CONSTANTS = [
    (boxed("e^2"), "e^{2}", 1.0),
    (boxed("e"), "2.718282", 1.0),
    (boxed("2e"), r"e \cdot 2", 1.0),
    (boxed("e + 1"), r"\mathrm{e}+1", 1.0),
    (boxed(r"1 - \frac{1}{e}"), r"1 - \frac{1}{\mathrm{e}}", 1.0),
    (boxed(r"1 + \frac{1}{e}"), r"1 - \frac{1}{\mathrm{e}}", 0.0),
    (boxed(r"\frac12 + i"), "0.5 + i", 1.0),
    (boxed("0.5 + i"), r"\frac{1}{2}+i", 1.0),
    (boxed("(1+i)^2"), "2i", 1.0),
    (boxed("i^2"), "-1", 1.0),
    (boxed("-1"), "i^2", 1.0),
    (boxed("1-i"), "1 + i", 0.0),
    (boxed("E"), "e", 1.0),
]

FINAL_ANSWER_MENTIONS = [
    (r"Thus \boxed{5} is my final answer, verified in 3 ways.", "5", 1.0),
    (r"Thus \boxed{5}. This is the final answer to question 2.", "5", 1.0),
    (r"Step: $\boxed{200}$. Final Answer: The final answer is $10,455$.", "10455", 1.0),
]

MISSING_REFERENCES = [
    ("The answer is 4", float("nan"), None),
    ("The answer is nan", float("nan"), None),
    ("The answer is nan", "nan", None),
    ("The answer is None", "None", None),
    ("The answer is 4", "", None),
    (boxed(r"\text{None}"), r"\text{None}", 1.0),
]

SEPARATORS_AND_SIGNS = [
    (boxed(r"1,000\%"), "1000", 1.0),
    (boxed("2^{10} = 1,024"), "1024", 1.0),
    (boxed("\u22121,000"), "-1000", 1.0),
    ("The answer is \u22125.", "-5", 1.0),
    ("The answer is \u22125.", "5", 0.0),
    ("The temperature fell to \u22127 degrees", "-7", 1.0),
    ("The answer is 5\u00a0000", "5000", 1.0),
    ("The answer is 30\u00b0.", r"30^\circ", 1.0),
    ("The answer is 30\u00b0C.", "30", 1.0),
    (boxed("12,345,678"), "12345678", 1.0),
    (boxed("(1,000)"), "1000", 0.0),
    (boxed("1,0"), "10", 0.0),
    (boxed("1,000"), "1,0", 0.0),
    (boxed("1,000"), "1", 0.0),
]

HEDGES = [(boxed(f"3 {op} 4"), "4", 0.0) for op in (
    r"\lor", r"\vee", r"\land", r"\wedge", r"\to", r"\Rightarrow", r"\implies", r"\iff", r"\mapsto",
    r"\sim", r"\equiv", r"\cup", r"\\", "=", "|", "->", "~",
)] + [
    (boxed(r"\frac{3}{1} \lor 4"), "3", 0.0),
    ("The answer is 3 (or maybe 4)", "4", 0.0),
    ("The answer is 3 -> 4", "4", 0.0),
    ("The answer is 3 ~ 4", "4", 0.0),
    (boxed("3|4"), "3", 0.0),
    (boxed("3 = 4"), "3", 0.0),
    (boxed("x = 3 = 4"), "4", 0.0),
    (boxed(r"3 \text{ (or 4)}"), "3", 0.0),
    (boxed(r"3\text{ (or }4\text{)}"), "3", 0.0),
    (boxed(r"4 \text{apples (not 3)}"), "4", 0.0),
    (boxed(r"3 \text{ or } 4"), "4", 0.0),
    ("The answer is 3 or 4.", "4", 0.0),
    (r"\boxed{3} or \boxed{4}", "4", 0.0),
    # assignments and equation chains that end in the value still answer it
    (boxed("x = 5"), "5", 1.0),
    (boxed("y = 5"), "x = 5", 0.0),
    (boxed("x = 5+5 = 10"), "10", 1.0),
    (boxed("3 + 4 = 7"), "7", 1.0),
    (boxed("3 + 4 = 8"), "8", 0.0),
    (boxed("f(x) = 2x+1"), "2x+1", 1.0),
    (boxed(r"x = 2 \text{ or } x = 3"), "2, 3", 1.0),
]

GSM8K_FORMS = [
    ("#### The answer is 72", "72", 1.0),
    ("#### 72 apples", "72", 1.0),
    ("#### $1,000", "1000", 1.0),
    ("#### 1,000.00", "1000", 1.0),
    ("#### 25%", "25", 1.0),
    ("The answer is: **72**", "72", 1.0),
    ("**Final Answer:** 72", "72", 1.0),
    ("The answer is 72", "Natalia sold 48/2 = 24 clips in May.\n#### 72", 1.0),
    ("The answer is 24", "Natalia sold 48/2 = 24 clips in May.\n#### 72", 0.0),
    ("The answer is 5 000", "5000", 1.0),
    ("The answer is 5.000", "5000", 0.0),
    (boxed("007"), "7", 1.0),
    (boxed(r"2^{64}"), "18446744073709551617", 0.0),
]


@pytest.mark.parametrize(
    "completion,reference,expected",
    UNEVALUATED + WORDS_AFTER_A_NUMBER + MULTI_PART + CHOICES + CONSTANTS + FINAL_ANSWER_MENTIONS
    + MISSING_REFERENCES + SEPARATORS_AND_SIGNS + HEDGES + GSM8K_FORMS,
)
def test_math_answers(math_reward, completion, reference, expected):
    (verdict,) = math_reward.verdicts(["q"], [completion], reference_answer=[reference])
    assert verdict.score == expected, verdict.reason


def test_reasons_name_the_rule_broken(math_reward):
    (undone, qualified, missing) = math_reward.verdicts(
        ["q"] * 3, [boxed("47+8-15"), boxed(r"3 \text{ (or 4)}"), "4"], reference_answer=["40", "3", float("nan")]
    )
    assert "arithmetic left undone" in undone.reason
    assert "qualifies its value in words" in qualified.reason
    assert missing.reason == "missing reference answer"


@pytest.mark.parametrize(
    "text,expected",
    [
        (r"Step 1 gives $\boxed{7}$. Hence $\boxed{2, 3}$.", "2, 3"),
        (r"Thus \boxed{5} is my final answer, verified in 3 ways.", "5"),
        (r"\boxed{5}" "\nFinal answer: 7", "7"),
        ("#### The answer is 72", "72"),
        ("Answer: C", "C"),
        ("The answer is: **72**", "72"),
        ("The temperature fell to \u22127 degrees", "\u22127"),
    ],
)
def test_extraction(text, expected):
    assert extract_answer(text) == expected
