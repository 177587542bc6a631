"""Host names in one form: how a DNS name is read, whichever field carries it.

A DNS SAN, a common name that looks like a host name, a policy pattern, an e-mail domain and a
name constraint are all converted here, so that a rule written for one spelling holds for every
spelling of the same name. Pure string functions; no Certforge imports.

The decisions (see "Names in one form" in docs/architecture.md):

- The form is the lower-case A-label (IDNA 2008 with UTS 46 mapping, by the `idna` package):
  what a dNSName must hold (RFC 5280 4.2.1.6), and what a host-name common name holds too, as a
  copy of that SAN (CA/B Forum BR 7.1.4.3).
- UTS 46 would also quietly map compatibility forms (fullwidth letters, ligatures, the Kelvin sign,
  the ideographic full stop) and drop invisible characters (soft hyphen, zero-width space,
  variation selectors). A name spelt so is refused instead, naming the character: it was
  written to look like a name it is not. Case is the only mapping applied silently.
- Zero-width (non-)joiners are refused as well, although IDNA 2008 allows them in some
  contexts: they are invisible, and transitional IDNA drops them.
- `ß` and `ς` are kept (IDNA 2008: `faß` is `xn--fa-hia`, not `fass`), but transitional
  processing (IDNA 2003, older clients) reads them as `ss` and a medial sigma, so a denied
  name holds against both readings: see `spellings`.
- An `xn--` label must decode to a valid IDNA 2008 label and encode back to itself.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import idna

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_ASCII_HOST_LIKE = re.compile(r"^[A-Za-z0-9*.-]+$")
_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})
"""The full stops UTS 46 reads as label separators."""

DEVIATIONS = {"\u00df": "ss", "\u03c2": "\u03c3", "\u200c": "", "\u200d": ""}
"""UTS 46 deviation characters and what transitional processing makes of them (UTS 46 §4)."""

MAX_NAME_LENGTH = 253

LATIN_LOOKALIKE_SCRIPTS = ("CYRILLIC", "GREEK", "ARMENIAN", "CHEROKEE")
"""Scripts with letters that look like Latin ones: a label may not mix them with Latin letters,
or with one another (UTS 39 "highly restrictive" allows only Latin with Han, Kana or Hangul)."""

CYRILLIC_LATIN_LOOKALIKES = frozenset(
    "\u0430\u0441\u0501\u0435\u04bb\u0456\u0458\u04cf\u043e\u0440\u051b"
    "\u0455\u051d\u0445\u0443\u044a\u044c\u04bd\u043f\u0433\u0475\u0461"
)
"""Lower-case Cyrillic letters that read as the Latin a c d e h i j l o p q s w x y b b e n r v w
(in that order): Chromium's IDN spoof checker's set."""

CYRILLIC_CC_TLDS = frozenset({"ru", "su", "ua", "by", "bg", "kz", "kg", "mk", "mn", "rs", "tj"})
"""Country domains of countries that write Cyrillic, where an all-Cyrillic label is expected."""


@lru_cache(maxsize=8192)
def dns_name(value: str) -> str:
    """`value` as a lower-case A-label DNS name, or `ValueError` saying why it is none.

    A leading `*` label (a wildcard) is allowed when a domain of two labels follows. Cached:
    a request reads the same names several times (SAN, CN, policy patterns), and checking an
    A-label (IDNA 2008 tables, both ways) costs more than the rest of the request's checks."""
    name = value.strip().rstrip(".")
    if not name.isascii():
        name = _to_ascii(name, value)
    name = name.lower()
    labels = name.split(".")
    if len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"invalid DNS name {value!r}: longer than {MAX_NAME_LENGTH} characters")
    for index, label in enumerate(labels):
        if label == "*" and index == 0 and len(labels) > 2:
            continue
        if label.startswith("xn--"):
            _check_a_label(label, value, labels[-1])
        if not _LABEL.match(label):
            raise ValueError(f"invalid DNS name {value!r}")
    return name


def host_name(value: str) -> str:
    """A DNS name in a certificate: also a domain in "preferred name syntax" (RFC 5280 4.2.1.6,
    RFC 1034), as the issuer's pre-issuance lint (pkilint) requires: at least two labels and a
    top-level label ending in a letter, so `localhost` and `10.0.0.1` as DNS are refused here
    rather than failing at the issuer."""
    name = dns_name(value)
    labels = name.split(".")
    if len(labels) < 2:
        raise ValueError(f"invalid DNS name {value!r}: needs a domain, e.g. host.example.internal")
    if not labels[-1][-1].isalpha():
        raise ValueError(
            f"invalid DNS name {value!r}: the top-level label must end with a letter"
            " (an IP address is a SAN of type ip)"
        )
    return name


def looks_like_host_name(value: str) -> bool:
    """Whether a common name reads as a host name with a domain, so that clients which still
    take host names from the CN would honour it: labels separated by a dot (any full stop
    UTS 46 reads as one), no spaces; ASCII made of letters, digits, `-`, `*` and dots only.

    `Alice`, `My Service v1.2`, `svc_a.internal` and `a@b.example` are not host names, and stay
    as written; `api.example.com`, the same in fullwidth letters, and `admin\u200b.example.com`
    are."""
    text = value.strip()
    if not text or any(c.isspace() for c in text):
        return False
    if text.isascii() and not _ASCII_HOST_LIKE.match(text):
        return False
    return len(text.translate(_DOTS).rstrip(".").split(".")) > 1


def common_name_form(value: str) -> str:
    """The common name to issue: a host name in its DNS form (`dns_name`), anything else as
    written. `ValueError` for a host name that is not a valid one (it is refused, never issued
    as written: clients reading it as a host name would map it to some other name)."""
    if not looks_like_host_name(value):
        return value
    try:
        return dns_name(value)
    except ValueError as exc:
        raise ValueError(f"looks like a host name but is not a valid one: {exc}") from None


def invisible_character(value: str) -> str | None:
    """A description of the first invisible character in `value` (a format character such as
    a zero-width space, soft hyphen or bidi control, or one UTS 46 ignores), or None."""
    for c in value:
        if not c.isascii() and (unicodedata.category(c) == "Cf" or _uts46(c) == ""):
            return f"{_describe(c)} is an invisible character"
    return None


@lru_cache(maxsize=4096)
def spellings(name: str) -> tuple[str, ...]:
    """`name` (a `dns_name`) and, if transitional IDNA reads it as another name, that name too:
    `xn--fa-hia.example` (`faß.example`) is also `fass.example` to an IDNA 2003 client. A denied
    pattern is matched against every spelling of the name, and every spelling of the pattern."""
    if "xn--" not in name:
        return (name,)
    labels = []
    for label in name.split("."):
        if label.startswith("xn--"):
            label = _transitional(label)
        labels.append(label)
    twin = ".".join(labels)
    return (name,) if twin == name else (name, twin)


def _transitional(a_label: str) -> str:
    try:
        u_label = idna.ulabel(a_label)
        mapped = "".join(DEVIATIONS.get(c, c) for c in u_label)
        if mapped == u_label:
            return a_label
        return mapped if mapped.isascii() else idna.alabel(mapped).decode("ascii")
    except UnicodeError:  # idna.IDNAError is one; the label stays as it is
        return a_label


def _to_ascii(name: str, value: str) -> str:
    """A non-ASCII name to A-labels, refusing the characters UTS 46 would silently change."""
    for c in name:
        if not c.isascii():
            refused = _refusal(c)
            if refused:
                raise ValueError(f"invalid DNS name {value!r}: {refused}")
    try:
        mapped = idna.uts46_remap(name, std3_rules=False, transitional=False)
        # label by label, as a `*` wildcard label is no IDNA label
        return ".".join(
            label if label.isascii() else idna.alabel(label).decode("ascii")
            for label in mapped.split(".")
        )
    except UnicodeError as exc:  # idna.IDNAError is one
        raise ValueError(f"invalid DNS name {value!r}: {exc}") from None


def _refusal(c: str) -> str | None:
    """Why a non-ASCII character may not be written in a name, or None if it may."""
    if unicodedata.category(c) == "Cf" or DEVIATIONS.get(c) == "":
        return f"{_describe(c)} is an invisible character"
    mapped = _uts46(c)
    if mapped is None:
        return None  # disallowed: the conversion refuses it with its own message
    if mapped == "":
        return f"{_describe(c)} is an invisible character"
    if mapped != c and (mapped != c.lower() or unicodedata.normalize("NFC", c) != c):
        return f"{_describe(c)} is a compatibility form of {mapped!r}; write {mapped!r}"
    return None


def _uts46(c: str) -> str | None:
    try:
        return idna.uts46_remap(c, std3_rules=False, transitional=False)
    except UnicodeError:
        return None


def _check_a_label(label: str, value: str, tld: str) -> None:
    try:
        u_label = idna.ulabel(label)
        valid = idna.alabel(u_label).decode("ascii") == label
    except UnicodeError as exc:
        raise ValueError(
            f"invalid DNS name {value!r}: {label!r} is not a valid A-label ({exc})"
        ) from None
    if not valid:
        raise ValueError(
            f"invalid DNS name {value!r}: {label!r} is not a valid A-label (not in canonical form)"
        )
    for c in u_label:
        refused = _refusal(c)
        if refused:
            raise ValueError(f"invalid DNS name {value!r}: A-label {label!r}: {refused}")
    confusable = _confusable(u_label, tld)
    if confusable:
        raise ValueError(f"invalid DNS name {value!r}: {label!r} ({u_label}) {confusable}")


def _script(c: str) -> str:
    """The script of a letter, as far as look-alikes of Latin go: `LATIN`, one of
    `LATIN_LOOKALIKE_SCRIPTS`, or `OTHER` (digits, `-` and every other script)."""
    if c.isascii():
        return "LATIN" if c.isalpha() else "OTHER"
    word = unicodedata.name(c, "").split(" ", 1)[0]
    return word if word == "LATIN" or word in LATIN_LOOKALIKE_SCRIPTS else "OTHER"


def _confusable(u_label: str, tld: str) -> str | None:
    """Why a label reads as another one, or None (UTS 39 §5.1-5.2, as browsers apply it):

    - it mixes Latin letters with those of a script whose letters look like Latin ones
      (`paypal` with U+0430, the Cyrillic `a`), or two such scripts;
    - every letter is a Cyrillic one that looks like a Latin letter (`apple` written with
      U+0430 U+0440 U+0440 U+04CF U+0435), under a top-level domain that is not Cyrillic
      (Chromium's IDN rule)."""
    scripts = {_script(c) for c in u_label} - {"OTHER"}
    lookalike = sorted(scripts & set(LATIN_LOOKALIKE_SCRIPTS))
    if lookalike and len(scripts) > 1:
        odd = next(c for c in u_label if _script(c) in lookalike)
        mixed = " and ".join(name.title() for name in sorted(scripts))
        return f"mixes {mixed} letters ({_describe(odd)})"
    letters = [c for c in u_label if c.isalpha()]
    if (
        letters
        and all(c in CYRILLIC_LATIN_LOOKALIKES for c in letters)
        and not _cyrillic_domain(tld)
    ):
        return (
            "is written only with Cyrillic letters that look like Latin ones, under a "
            "top-level domain that is not Cyrillic"
        )
    return None


def _cyrillic_domain(tld: str) -> bool:
    if tld in CYRILLIC_CC_TLDS:
        return True
    if not tld.startswith("xn--"):
        return False
    try:
        return any(_script(c) == "CYRILLIC" for c in idna.ulabel(tld))
    except UnicodeError:
        return False


def _describe(c: str) -> str:
    return f"U+{ord(c):04X} ({unicodedata.name(c, 'unnamed')})"
