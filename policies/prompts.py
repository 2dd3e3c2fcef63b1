"""Render a problem into the exact text the policy sees, for generation and training alike.

With a chat model the problem becomes one user turn under the tokenizer's chat template
(with the generation prompt); otherwise it is the plain text. Rollouts store the rendered
text, and SFT trains on that same text, so train and inference contexts match.
"""

from __future__ import annotations


def render_prompt(tokenizer, problem: str, use_chat_template: bool = True) -> str:
    if use_chat_template and getattr(tokenizer, "chat_template", None):
        messages = [{"role": "user", "content": problem}]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return problem
