"""Turn a week of filtered posts into editions: jinja2 templates rendered, CSS inlined by premailer.

An edition is rendered and inlined once per distinct topic selection; each subscriber's copy only
fills in placeholders (greeting, preferences and unsubscribe links), so premailer never runs per reader.
"""

from __future__ import annotations

from ..models import Edition
from ..periods import week_bounds
from ._cards import BODY_LIMIT, MAX_IMAGES, Names, chat_text
from ._composer import Composer, compose_issue
from ._labels import edition_path, selection, zone_label
from ._render import PLACEHOLDERS, environment, inline_css, personalize
from ._views import Card, ChatQuestionView, ChatView, Counts, Image, LinkView, Section, Tuning

__all__ = [
    "BODY_LIMIT",
    "MAX_IMAGES",
    "PLACEHOLDERS",
    "Card",
    "ChatQuestionView",
    "ChatView",
    "Composer",
    "Counts",
    "Edition",
    "Image",
    "LinkView",
    "Names",
    "Section",
    "Tuning",
    "chat_text",
    "compose_issue",
    "edition_path",
    "environment",
    "inline_css",
    "personalize",
    "selection",
    "week_bounds",
    "zone_label",
]
