"""The templates' side of composing: the jinja2 environment, CSS inlined by premailer, and the placeholders a
subscriber's copy fills in (`personalize`) without rendering again."""

from __future__ import annotations

import functools
import html as htmllib
import logging
import re
import traceback
from dataclasses import replace
from pathlib import Path

import jinja2
from markupsafe import Markup
from premailer import Premailer

from .. import feedback
from ..models import Edition

# What a subscriber's copy fills in. Tokens of letters and %: autoescaping and premailer leave them alone.
PLACEHOLDERS = {
    "greeting": "%%GREETING%%",
    "preferences_url": "%%PREFERENCES_URL%%",
    "unsubscribe_url": "%%UNSUBSCRIBE_URL%%",
}
_PLACEHOLDER = re.compile("|".join(re.escape(token) for token in PLACEHOLDERS.values()))


class _Slot(Markup):
    """A placeholder token: printed as is, never neutralized by `_neutralize`."""


def _neutralize(value: object) -> object:
    """Break up ``%%`` in printed data, so a post can never carry a placeholder a subscriber's copy fills in."""
    if isinstance(value, _Slot):
        return value
    if isinstance(value, str) and "%%" in value:
        return value.replace("%%", "%\u2060%")
    return value


@functools.lru_cache(maxsize=8)
def environment(templates_dir: Path | None = None) -> jinja2.Environment:
    """The jinja2 environment: autoescape on (off for .txt and .css), `StrictUndefined`, templates from
    ``templates_dir`` first when given (to override single templates), then from the installed package."""
    loaders: list[jinja2.BaseLoader] = []
    if templates_dir is not None:
        loaders.append(jinja2.FileSystemLoader(templates_dir))
    loaders.append(jinja2.PackageLoader("digest.templates", "."))
    return jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=jinja2.select_autoescape(disabled_extensions=("txt", "css"), default=True),
        undefined=jinja2.StrictUndefined,
        finalize=_neutralize,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,
    )


def inline_css(html: str) -> str:
    """Inline the ``<style>`` rules into style attributes; media queries (mobile, dark mode) stay in a
    ``<style>`` block with their ``!important``. No network: external stylesheets are never fetched."""
    return str(
        Premailer(
            html,
            allow_network=False,  # never fetch a <link> stylesheet
            strip_important=False,  # the kept media queries need !important to beat the inlined styles
            disable_link_rewrites=True,  # hrefs (and the placeholders in them) stay as rendered
            disable_basic_attributes=[
                "width",
                "height",
                "align",
            ],  # keep <img width="560"> for Outlook, no width="auto"
            cssutils_logging_level=logging.CRITICAL,  # cssutils warns ~60 times on vendor properties: ~20 ms each email
        ).transform()
    )


def personalize(edition: Edition, *, unsubscribe_url: str, preferences_url: str, name: str = "") -> Edition:
    """A copy with no reader's feedback links (the archive, a preview): the placeholders filled in (escaped for
    the HTML part), nothing re-rendered."""
    greeting = f"Hi {name.strip()}," if name.strip() else "Hello,"
    text_values = {
        PLACEHOLDERS["greeting"]: greeting,
        PLACEHOLDERS["preferences_url"]: preferences_url,
        PLACEHOLDERS["unsubscribe_url"]: unsubscribe_url,
    }
    html_values = {token: htmllib.escape(value) for token, value in text_values.items()}
    return replace(
        edition,
        html=feedback.strip(_PLACEHOLDER.sub(lambda m: html_values[m.group(0)], edition.html)),
        text=feedback.strip(_PLACEHOLDER.sub(lambda m: text_values[m.group(0)], edition.text)),
    )


def _template_line(exc: jinja2.TemplateError) -> str:
    """``path:line`` of the template where rendering failed, from jinja2's rewritten traceback."""
    if isinstance(exc, jinja2.TemplateSyntaxError) and exc.filename:
        return f"{exc.filename}:{exc.lineno}"
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.endswith((".html", ".txt", ".css"))]
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else ""
