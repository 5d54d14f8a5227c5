"""Topic filter: decide which followed topics each post of a weekly batch is about, without labelled data.

Keywords seed one TF-IDF classifier in which the topics and chatter compete, thresholded from the batch itself.
The stages live apart: `_batch` (vectors and keyword look-ups), `_evidence` (what the curator's words say),
`_model` (the fit), `_filter` (thresholds and decisions) and `_examples` (readers' accepted feedback).
"""

from __future__ import annotations

from ..models import Decision
from ..textnorm import normalize
from ._evidence import keyword_matches
from ._examples import Example, with_examples
from ._filter import TopicFilter, classify, explain
from ._spec import DEFAULT_NOISE, DEFAULT_THRESHOLD, Explanation, NoiseProfile, TopicSpec

__all__ = [
    "DEFAULT_NOISE",
    "DEFAULT_THRESHOLD",
    "Decision",
    "Example",
    "Explanation",
    "NoiseProfile",
    "TopicFilter",
    "TopicSpec",
    "classify",
    "explain",
    "keyword_matches",
    "normalize",
    "with_examples",
]
