"""Email addresses: checked with `email-validator` and told in words, and the key a rate limit counts.

    normalize("Ana@Example.ORG")          # "ana@example.org" (what is stored and mailed)
    normalize("jörg@bücher.de")           # "jörg@xn--bcher-kva.de" (a UTF-8 local part needs SMTPUTF8)
    limit_key("A.n.a+news@googlemail.com")   # "ana@gmail.com" (what the per-address limit counts)

No DNS lookup is made (``check_deliverability=False``): digest may run with no network, and a
mistyped domain shows up as a bounce. An address keeps its plus-tag and dots: only the limit key
drops them, so ``victim+1@`` and ``victim+2@`` share one limit.
"""

from __future__ import annotations

import contextlib
import email.utils

from email_validator import EmailNotValidError, validate_email

from .errors import AddressError

__all__ = ["MAX_ADDRESS", "AddressError", "limit_key", "needs_smtputf8", "normalize", "to_header", "wire_form"]

MAX_ADDRESS = 254  # RFC 5321: the longest path is 256 octets with its angle brackets
MAX_LOCAL = 64  # RFC 5321 4.5.3.1.1
# Providers that deliver a.b.c@ to abc@ (and their other names for the same mailboxes).
_DOTS_IGNORED = {"gmail.com": "gmail.com", "googlemail.com": "gmail.com"}


def normalize(raw: str) -> str:
    """A plain ``local@domain`` address, trimmed and lower-cased, its domain as ASCII (punycode);
    `AddressError` with a message a person can act on otherwise."""
    value = (raw or "").strip().removesuffix(".")  # "example.org." is the same domain, fully qualified
    if not value:
        raise AddressError("Please enter your email address.")
    if len(value) > MAX_ADDRESS:
        raise AddressError(f"That email address is too long (at most {MAX_ADDRESS} characters).")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise AddressError("An email address cannot contain spaces or line breaks.")
    if len(value.rpartition("@")[0]) > MAX_LOCAL:
        raise AddressError(f"The part before the @-sign is too long (at most {MAX_LOCAL} characters).")
    try:
        found = validate_email(value, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as exc:
        raise AddressError(str(exc)) from None
    address = f"{found.local_part}@{found.ascii_domain}".lower()
    if len(address) > MAX_ADDRESS:
        raise AddressError(f"That email address is too long (at most {MAX_ADDRESS} characters).")
    return address


def wire_form(address: str) -> str:
    """The address as SMTP and headers carry it: the domain in ASCII (punycode), the local part as it is."""
    local, at, domain = address.strip().rpartition("@")
    with contextlib.suppress(UnicodeError):  # not a domain IDNA can write: the server will say so
        domain = domain.encode("idna").decode("ascii")
    return f"{local}{at}{domain}"


def to_header(address: str) -> str:
    """The address as a To: header value: ASCII as the email package writes it, a UTF-8 local part
    as it is (RFC 6532; a message to it goes out with SMTPUTF8 and UTF-8 headers)."""
    address = wire_form(address)
    return address if needs_smtputf8(address) else email.utils.formataddr(("", address))


def needs_smtputf8(address: str) -> bool:
    """True for an address whose local part is not ASCII: only a server offering SMTPUTF8 takes it."""
    return not address.rpartition("@")[0].isascii()


def limit_key(address: str) -> str:
    """The mailbox an address reaches, for counting: lower-cased, the ``+tag`` dropped, and the dots
    dropped where the provider ignores them (Gmail)."""
    local, _, domain = address.strip().lower().rpartition("@")
    local = local.split("+", 1)[0] or local
    domain = _DOTS_IGNORED.get(domain, domain)
    if domain in _DOTS_IGNORED.values():
        local = local.replace(".", "")
    return f"{local}@{domain}"
