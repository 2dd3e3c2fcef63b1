"""The `math` reward against a red-team review's findings: answers that were scored wrong
(reward hacks accepted, right answers rejected), each with its family.

- Arithmetic left undone ("47+8-15") does not answer a number: it may be the question copied.
- Words after a number: scale words multiply ("1.5 million"); words that change the value
  ("2 dozen", "5 squared", "5 or more") make it no plain number.
- Multi-part answers, multiple-choice letters, `e` and `i`, "final answer" mentions, missing
  references, thousands commas and Unicode minus, hedges joined by an operator.

A second review's findings: `<think>` blocks, answers stated after the last box, hedges
written as several math spans, markdown `####` headings, "the answer is" phrases that
state no value or wrap it in prose, lists of option letters, inequalities against
intervals, unit words, float rounding, LaTeX wrappers.
"""

from __future__ import annotations

import pytest

from rewards import MathReward, extract_answer
from rewards.verdict import final_text


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

# Reasoning models answer after `</think>`; what they try while thinking is not the answer.
THINK_TAGS = [
    ("<think>so the answer is \\boxed{18}. </think>\n\nTherefore Janet makes $12 a day.", "18", 0.0),
    ("<think>Maybe \\boxed{12}? Hmm, recompute: 18.</think>\n\nThe answer is 18.", "18", 1.0),
    ("<think>so final answer \\boxed{18}. </think>\n\n#### 12", "18", 0.0),
    ("<think>The answer is 18. </think>\n\nSo x = 12.", "18", 0.0),
    ("<think>The answer is 18. </think>\n\n", "18", 0.0),
    ("<think>long reasoning, cut off... The answer is 18", "18", 0.0),  # never closed: no answer yet
    # DeepSeek-R1's chat template opens <think> in the prompt
    ("Okay, so... \\boxed{12} wait no.\n</think>\n\nThe total is $\\boxed{18}$.", "18", 1.0),
    ([{"role": "assistant", "content": "<think>\\boxed{12}</think>\\boxed{18}"}], "18", 1.0),
]

# An answer statement with a value after the last box supersedes it; prose without one does not.
ANSWER_AFTER_BOX = [
    ("We get \\boxed{18}.\n\n**Answer:** 12", "18", 0.0),
    ("\\boxed{18}\n\nAnswer: 12", "18", 0.0),
    (r"We get \boxed{12}." "\n\nWait, I made an error: 9*2 = 18. So the answer is 18.", "18", 1.0),
    (r"We get \boxed{18}. I double-checked, and the answer is correct.", "18", 1.0),
    (r"We get \boxed{18}. Checking: the answer is 12 is wrong since 9*2 = 18.", "18", 1.0),
]

# A value joined to other values by "or" / "and" / "," is read with them: a hedge answers none.
JOINED_SPANS = [
    ("The answer is $-2$ or $2$.", "-2", 0.0),
    ("The answer is $-2$, or maybe $2$.", "-2", 0.0),
    ("Final answer: $-2$ (and also $2$ works).", "-2", 0.0),
    ("So the solutions are $x=2$ or $x=-2$.", "-2", 0.0),
    ("So the solutions are $x=2$ or $x=-2$.", "2, -2", 1.0),
    ("The answer is $2$ and $-2$.", "2, -2", 1.0),
    ("So the solutions are $2$ and $-2$.", "2, -2", 1.0),
    ("Final Answer: The final answer is $x=2$ or $x=-2$. I hope it is correct.", "2, -2", 1.0),
    # one value followed by prose stays one value
    ("The answer is $18$, which is 9 times 2.", "18", 1.0),
    ("Answer: $18$ dollars per day (since 9 eggs times $2).", "18", 1.0),
]

# A markdown `####` heading is not GSM8K's answer marker.
MARKDOWN_HEADINGS = [
    ("#### Step 1: Find eggs sold\n16-3-4=9\n#### Step 2: Compute money\n9*2 = 18\n\nThe answer is 18.", "18", 1.0),
    ("#### Step 1: Find eggs sold\n16-3-4=9\n#### Step 2: Compute money\n9*2 = 18\n\n**Answer:** 18", "18", 1.0),
    ("#### Step 2: Compute money (2 dollars each)\n9*2=18. The answer is 18.", "2", 0.0),
    ("#### Final Answer\n18", "18", 1.0),
    ("#### Final Answer\n18\n\nCheck: 18 - 6 = 12 eggs left.", "18", 1.0),
    ("#### Final Answer\nThe answer is 18.", "18", 1.0),
    ("#### Final Answer\n$$18$$", "18", 1.0),
    ("### Step 1\n16-3-4=9\n#### Final Answer\nJanet makes $18 per day.", "18", 1.0),
]

# "The answer is X": the last phrase that states a value, its leading value, the value in its prose.
ANSWER_IS_READING = [
    ("The answer is 18. I double-checked, and the answer is correct.", "18", 1.0),
    ("The answer is 18.\nVerification: 9 eggs * $2 = $18, so the answer is correct.", "18", 1.0),
    ("So she makes $18. Yes, the answer is reasonable.", "18", 1.0),
    ("The answer is 18.\n\nNote: the answer is in dollars.", "18", 1.0),
    ("The answer is $18$.\n\nThe answer is the same as before.", "18", 1.0),
    ("The answer is 18 (9 eggs at $2 each).", "18", 1.0),
    ("The answer is 18 (9 eggs at $2 each).", "2", 0.0),
    ("Final answer: 18 (she sells 9 eggs at 2 dollars each).", "18", 1.0),
    ("So she makes $18 daily.\n\nThe answer is: Janet makes $18.", "18", 1.0),
    ("The answer is 18 dollars per day because she sells 9 eggs at 2 each.", "18", 1.0),
    ("The final answer is 18, and that is what Janet makes.", "18", 1.0),
    ("Final Answer: The number of eggs she doesn't sell is 9.", "9", 1.0),
    ("The answer is approximately 18.", "18", 1.0),
    ("The answer is about 18 dollars.", "18", 1.0),
    # word answers still work; prose that says something else than the value does not answer it
    ("The answer is Evelyn.", r"\text{Evelyn}", 1.0),
    ("The answer is yes.", "yes", 1.0),
    ("The answer is odd.", r"\text{odd}", 1.0),
    ("The answer is not 18.", "18", 0.0),
    ("The answer is more than 18.", "18", 0.0),
    ("The answer is either 18 or 20.", "18", 0.0),
    ("The answer is between 17 and 18.", "18", 0.0),
    ("The answer is: Janet makes 20 or 18 dollars.", "18", 0.0),
    ("The answer is negative 5.", "5", 0.0),
    ("The answer is 18 (or 20).", "18", 0.0),
    ("The answer is 20, or possibly 18.", "18", 0.0),
    ("The answer is 5 or more of them.", "5", 0.0),
    ("The ratio is 1:2", "1:2", 1.0),
    ("The ratio is 1:2", "2:1", 0.0),
]

# MATH's "enter the letters, separated by commas": compared as sets of letters.
LETTER_LISTS = [
    (boxed("A, D, F, G, H"), r"\text{A, D, F, G, H}", 1.0),
    (boxed("A,D,F,G,H"), r"\text{A, D, F, G, H}", 1.0),
    (boxed(r"\text{A}, \text{D}, \text{F}, \text{G}, \text{H}"), r"\text{A, D, F, G, H}", 1.0),
    (boxed(r"\text{H, G, F, D, A}"), r"\text{A, D, F, G, H}", 1.0),
    (boxed("B, E"), r"\text{B, E}", 1.0),
    (boxed("A, D, F, G"), r"\text{A, D, F, G, H}", 0.0),
    (boxed("A, D, F, G, H, B"), r"\text{A, D, F, G, H}", 0.0),
    (boxed("A, A, D, F, G, H"), r"\text{A, D, F, G, H}", 0.0),
    (boxed("B, F"), r"\text{B, E}", 0.0),
    (boxed(r"\text{B}"), r"\text{B, E}", 0.0),
]

# An inequality solved for the variable answers the interval, as the interval answers it.
INEQUALITIES_VS_INTERVALS = [
    (boxed("x<3"), r"(-\infty,3)", 1.0),
    (boxed(r"-2 \le x \le 7"), "[-2,7]", 1.0),
    (boxed(r"x \geq 8"), r"[8,\infty)", 1.0),
    (boxed(r"x \neq 3"), r"(-\infty,3)\cup(3,\infty)", 1.0),
    (boxed(r"x \le 3"), r"(-\infty,3)", 0.0),
    (boxed("x<4"), r"(-\infty,3)", 0.0),
    # the question's inequality copied is not its solution
    (boxed("x^2 < 4"), "(-2,2)", 0.0),
    (boxed("2x < 6"), r"(-\infty,3)", 0.0),
]

UNIT_WORDS = [
    (boxed(r"12 \text{ units squared}"), "12", 1.0),
    (boxed(r"12 \text{ cm squared}"), "12", 1.0),
    ("The answer is 12 feet squared.", "12", 1.0),
    (boxed(r"\frac{9}{2}\text{ cm squared}"), r"\frac92", 1.0),
    ("The answer is 20 times.", "20", 1.0),
    ("#### 20 times", "20", 1.0),
    (boxed(r"20 \text{ times}"), "20", 1.0),
    ("The answer is 5 times 3.", "5", 0.0),
    ("The answer is 5 times ten.", "5", 0.0),
    (boxed(r"5 \text{ times } 3"), "5", 0.0),
    ("The answer is 20 plus.", "20", 0.0),
]

# Plain numbers are compared as the symbolic path compares floats: rounded to `precision` places.
FLOAT_PRECISION = [
    ("The answer is 0.30000000000000004", "0.3", 1.0),
    ("#### 18.000000000000004", "18", 1.0),
    ("#### 18.0000001", "18", 1.0),
    ("#### 18.01", "18", 0.0),
    ("#### 18.000001", "18", 0.0),
    ("#### 18446744073709551617", "18446744073709551616", 0.0),
    ("#### 18446744073709551617.0", "18446744073709551616", 0.0),
]

LATEX_WRAPPERS = [
    (boxed(r"\boldsymbol{18}"), "18", 1.0),
    (boxed(r"\boldsymbol{19}"), "18", 0.0),
    (boxed(r"\text{\$}18"), "18", 1.0),
    (boxed(r"18~\text{dollars}"), "18", 1.0),
]


@pytest.mark.parametrize(
    "completion,reference,expected",
    UNEVALUATED + WORDS_AFTER_A_NUMBER + MULTI_PART + CHOICES + CONSTANTS + FINAL_ANSWER_MENTIONS
    + MISSING_REFERENCES + SEPARATORS_AND_SIGNS + HEDGES + GSM8K_FORMS + THINK_TAGS + ANSWER_AFTER_BOX
    + JOINED_SPANS + MARKDOWN_HEADINGS + ANSWER_IS_READING + LETTER_LISTS + INEQUALITIES_VS_INTERVALS
    + UNIT_WORDS + FLOAT_PRECISION + LATEX_WRAPPERS,
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
    (cut_off,) = math_reward.verdicts(["q"], ["<think>so the answer is 4"], reference_answer=["4"])
    assert cut_off.reason == "no answer after the reasoning"


@pytest.mark.parametrize(
    "text,expected",
    [
        ("<think>maybe 12</think>\n\nThe answer is 18.", "\n\nThe answer is 18."),
        ("<think>a</think>b</think>The answer is 18.", "The answer is 18."),
        ("Reasoning...</think>The answer is 18.", "The answer is 18."),
        ("<think>cut off while thinking", ""),
        ("<think>a</think>answer <think>cut off", ""),
        ("The answer is 18.", "The answer is 18."),
    ],
)
def test_final_text(text, expected):
    assert final_text(text) == expected


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
        (r"<think>\boxed{12}</think>The answer is 18.", "18"),
        ("The answer is $-2$, or maybe $2$.", "-2, 2"),
        (r"So $x = 2$ or $x = -2$.", "x = 2, x = -2"),
        ("#### Step 2: Compute money (2 dollars each)\nSo 18 in all", "18"),
        ("#### Final Answer\n\n**18**", "18"),
        ("The answer is 18. Indeed the answer is correct.", "18"),
        ("The answer is 18 (9 eggs at $2 each).", "18"),
        ("The answer is: Janet makes $18.", "18"),
        ("The answer is Evelyn.", "Evelyn"),
        ("The ratio is 1:2", "1:2"),
    ],
)
def test_extraction(text, expected):
    assert extract_answer(text) == expected
