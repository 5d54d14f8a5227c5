"""Canonical URLs and stable post ids: the keys that recognise one post or link seen twice."""

from __future__ import annotations

import hashlib
import re
from urllib.parse import urljoin, urlsplit

from w3lib.url import canonicalize_url, url_query_cleaner

__all__ = ["TRACKING_PARAMS", "absolute", "canonical_url", "post_id"]

# Query parameters that only say where a click came from; removed before links are compared.
TRACKING_PARAMS = (
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "utm_id",
    "utm_name",
    "utm_reader",
    "utm_brand",
    "utm_social",
    "utm_social-type",
    "fbclid",
    "gclid",
    "dclid",
    "gbraid",
    "wbraid",
    "msclkid",
    "mc_cid",
    "mc_eid",
    "igshid",
    "yclid",
    "_hsenc",
    "_hsmi",
    "mkt_tok",
    "oly_enc_id",
    "oly_anon_id",
    "vero_id",
    "wt_mc",
    "wt.mc_id",
    "ref_src",
    "ref_url",
    "cmpid",
    "s_cid",
    "spm",
    "share",
    "ncid",
    "sr_share",
    "rss",
    "ito",
    "__twitter_impression",
)
_PLAIN = re.compile(r"^https?://[a-z0-9.-]+(/[A-Za-z0-9._~!$&'()*+,;=:@/-]*)?$")
_MASTODON_URI = re.compile(r"^(https?://[^/]+)/users/([^/]+)/statuses/(\d+)$")


def canonical_url(url: str) -> str:
    """A URL for comparison: tracking parameters and fragment dropped, host lower-cased,
    query sorted, default port removed. Non-http URLs come back unchanged."""
    url = url.strip()
    if _PLAIN.match(url):
        return url  # already canonical: lower-case host, no query, port or escapes (most status URLs)
    if not url.lower().startswith(("http://", "https://")):
        return url
    try:
        cleaned = url_query_cleaner(url, TRACKING_PARAMS, remove=True, unique=False, keep_fragments=False)
        result = canonicalize_url(cleaned, keep_fragments=False)
    except ValueError:
        return url
    parts = urlsplit(result)
    if (parts.scheme, parts.port) in (("http", 80), ("https", 443)):
        result = result.replace(f":{parts.port}", "", 1)
    return result


def mastodon_identity(uri: str, url: str) -> str:
    """The one identity of a Mastodon status, whether seen by API (uri and url) or RSS (url only)."""
    if url:
        return canonical_url(url)
    match = _MASTODON_URI.match(uri)
    return f"{match.group(1)}/@{match.group(2)}/{match.group(3)}" if match else uri


def post_id(identity: str) -> str:
    """A short, stable id for a post's identity (16 hex digits of SHA-256)."""
    return hashlib.sha256(identity.encode("utf-8")).hexdigest()[:16]


def absolute(href: str, base: str) -> str:
    """Resolve a possibly relative link against a base URL; junk comes back as it was."""
    if not href.strip():
        return ""
    if href.startswith(("https://", "http://")):
        return href.strip()
    try:
        return urljoin(base, href.strip()) if base else href.strip()
    except ValueError:
        return href
