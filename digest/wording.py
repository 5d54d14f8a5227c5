"""How a count reads in words, the same in the terminal and in an edition: ``1 source``, ``2 sources``."""

from __future__ import annotations

__all__ = ["plural"]


def plural(count: int, word: str, many: str = "") -> str:
    """``1 subscriber``, ``2 subscribers``, ``1,200 posts``; ``many`` is a plural not made with -s
    (``plural(2, "reply", "replies")``)."""
    return f"{count:,} {word if count == 1 else many or word + 's'}"
