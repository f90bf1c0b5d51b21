"""The product's one estimate of how many tokens a text is, where no tokenizer counts it.

The web and worker processes do not load the model's tokenizer, so tokens are estimated,
and the estimate errs high: one token per 3 ASCII characters, but one per digit
(tokenizers such as Qwen's and SmolLM2's split numbers into single digits) and one per
UTF-8 *byte* outside ASCII (measured with SmolLM2's tokenizer on Django's translations:
0.44 tokens per byte in Russian, 0.57 in Chinese, 0.85 in Korean, 0.99 in Telugu; one per
character undercounted Chinese 1.25x and Telugu 2.5x), plus a fixed overhead per chat
message for the template's role markers. Where the server has a tokenizer the product
counts with it instead (``ai.llm_capabilities``). BPE
tokenizers average about 4 characters per token on English prose, so English is
overestimated by about a third; ``tests/tutor/test_conversation_context.py`` checks the
estimate never undercounts a real tokenizer on sample texts.

Used to fit the tutor's context to the model's window (``tutor.context``) and to count a
call's tokens in the ledger when the server reported none (``ai.ledger``): erring high
there keeps a learner who stops every reply early from using the model for free.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

ASCII_CHARS_PER_TOKEN = 3
MESSAGE_OVERHEAD_TOKENS = 8


def tokens_estimate(text: str) -> int:
    """A conservative estimate of the tokens in ``text``."""
    ascii_chars = len(text.encode("ascii", "ignore"))
    digits = sum(map(str.isdigit, text))
    other_bytes = len(text.encode("utf-8")) - ascii_chars
    return math.ceil(max(ascii_chars - digits, 0) / ASCII_CHARS_PER_TOKEN) + digits + other_bytes


def _content_text(content: Any) -> str:
    """The text of a chat message's content: a string, or a list of parts (text, image)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, Mapping) and part.get("type") == "text"
        )
    return ""


def message_tokens_estimate(message: Mapping[str, Any]) -> int:
    """Tokens of one chat message, its role markers included (images are not counted)."""
    return tokens_estimate(_content_text(message.get("content"))) + MESSAGE_OVERHEAD_TOKENS


def messages_tokens_estimate(messages: Iterable[Mapping[str, Any]]) -> int:
    return sum(message_tokens_estimate(message) for message in messages)
