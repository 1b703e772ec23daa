"""Mail addresses from Vietnamese names and agency abbreviations (REQUIREMENTS M2-M5).

- :func:`fold` turns Vietnamese text into lower-case ASCII: every tone mark and every letter
  modifier (breve, circumflex, horn) is dropped and đ/Đ becomes d, whether the input is
  precomposed (NFC) or decomposed (NFD, as some keyboards and macOS produce).
- :func:`personal_address` builds a person's address under a policy profile's format:
  ``fullname`` (QT §6.2) gives ``nguyenvanlong@domain``; ``given-initials-agency`` (NB §5.2,
  LC §5.2) gives ``longnv.sokhcn@domain``. A namesake gets the next integer right after the
  name part: ``nguyenvanlong1``, ``longnv1.sokhcn``.
- :func:`agency_address` builds ``<abbr>@domain`` or, with a parent, ``<unit>.<agency>@domain``;
  a commune, ``<commune>.<district>@domain``, has the same shape (LC §5.1, NB §5.1, QT §6.1).

Rules decided here (the regulations leave them open):

- Names: letters, with "-" and an apostrophe allowed inside a word for names such as
  ``H'Hen Niê`` or ``Y-Moan Ênuôl`` (both dropped from the address). Whitespace is normalised;
  invisible format characters pasted from office files (zero-width space, BOM) are dropped.
  A letter that has no ASCII form after folding (``王``, ``ß``, ``ł``), a digit (namesakes are
  numbered by the system, not by the clerk) or any other character is refused. A name needs at
  least two words (family name and given name). U+00D0 ``Ð`` (Icelandic eth), a common
  mistyping of ``Đ`` from legacy Vietnamese encodings, folds to ``d`` too.
- Given-initials format: the given name is the last word; every word before it gives its
  first letter, so compound family names (``Tôn Nữ``, ``Âu Dương``) need no special case.
- Namesakes: the number is one more than the highest already taken for the same name part
  (the base address counting as 0), never the lowest gap: QT §6.2.b asks for "increasing"
  numbers for later registrants, and an address freed by a deleted mailbox is not handed to
  another person while it is still listed in ``taken``.
- Abbreviations (M2): folded and lower-cased, then only ASCII letters and digits, starting with
  a letter. Spaces, "-", "," and "." are refused with a message saying why (the dot is added by
  the system between unit and parent). The word "và" is refused when it stands as a word
  (``khcn và cn``); joined into a word it cannot be told from syllables such as ``văn`` or
  ``Vàng`` (``vanphong``, ``vangmachai``), so ``vaxx`` is accepted.
- Local parts stay within RFC 5321: at most 64 characters, dot-atom (letters, digits, single
  dots between them); a whole address at most 254 characters.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection

from .errors import NamingError
from .policy import PolicyProfile

LOCAL_PART_MAX = 64
ADDRESS_MAX = 254

# Letters that carry no combining mark in Unicode and so do not decompose: đ/Đ, and the
# look-alikes that legacy-encoding conversions put in its place.
_D_LETTERS = str.maketrans({"đ": "d", "Đ": "d", "ð": "d", "Ð": "d", "ɖ": "d", "Ɖ": "d"})
# Allowed inside a name word, removed from the address: hyphens and apostrophes.
_NAME_JOINERS = frozenset("-\u2010\u2011'\u2019\u02bc")
_ASCII_LETTER = re.compile(r"^[a-z]$")
_ABBREVIATION = re.compile(r"^[a-z][a-z0-9]*$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_EXAMPLE_NAME = "Nguyễn Văn Long"


def fold(text: str) -> str:
    """Vietnamese text to lower-case ASCII letters: ``"Nguyễn Văn Đức"`` -> ``"nguyen van duc"``.

    Only folds: characters with no ASCII form (``王``) and punctuation are left as they are;
    :func:`personal_address` and :func:`agency_address` refuse them.
    """
    decomposed = unicodedata.normalize("NFD", text.lower().translate(_D_LETTERS))
    stripped = "".join(char for char in decomposed if not unicodedata.combining(char))
    return unicodedata.normalize("NFC", stripped)


def _clean(text: str) -> str:
    """NFC, without invisible format characters, whitespace runs collapsed to one space."""
    text = unicodedata.normalize("NFC", text)
    text = "".join(char for char in text if unicodedata.category(char) != "Cf")
    return " ".join(text.split())


def _describe(char: str) -> str:
    name = unicodedata.name(char, "")
    return f"{char!r} (U+{ord(char):04X}{' ' + name if name else ''})"


def _fold_word(word: str, full_name: str) -> str:
    """A validated name word folded to ASCII letters, joiners dropped."""
    letters = []
    for char in word:
        if char in _NAME_JOINERS:
            continue
        if char.isdigit():
            raise NamingError(
                f"name {full_name!r} contains the digit {char!r}: give the name only; "
                "namesakes are numbered automatically"
            )
        folded = fold(char)
        if not unicodedata.category(char).startswith("L"):
            raise NamingError(
                f"name {full_name!r} contains {_describe(char)}: a name may hold only letters, spaces, "
                "'-' and apostrophes"
            )
        if not all(_ASCII_LETTER.match(c) for c in folded) or not folded:
            raise NamingError(
                f"name {full_name!r} contains the letter {_describe(char)}, which has no ASCII form: "
                "write the name in Vietnamese (Latin) letters"
            )
        letters.append(folded)
    if not letters:
        raise NamingError(f"name {full_name!r} has a word without letters ({word!r}): remove it")
    return "".join(letters)


def split_name(full_name: str) -> tuple[str, list[str], str]:
    """``(family, middle names, given name)`` of a full name, whitespace normalised.

    ``"Nguyễn  Thị Thu Hương"`` -> ``("Nguyễn", ["Thị", "Thu"], "Hương")``. The words keep
    their letters and case (NFC); every word is checked to make an address.
    """
    if not isinstance(full_name, str):
        raise NamingError(f"name {full_name!r} is not text: give the full name, e.g. {_EXAMPLE_NAME}")
    words = _clean(full_name).split(" ")
    if words == [""]:
        raise NamingError(f"name {full_name!r} is empty: give the person's full name, e.g. {_EXAMPLE_NAME}")
    for word in words:
        _fold_word(word, full_name)
    if len(words) < 2:
        raise NamingError(f"name {full_name!r} has one word: give family name and given name, e.g. {_EXAMPLE_NAME}")
    return words[0], words[1:-1], words[-1]


def _domain(domain: str) -> str:
    value = domain.strip().lower() if isinstance(domain, str) else domain
    if not isinstance(value, str) or not _DOMAIN.match(value):
        raise NamingError(f"mail domain {domain!r} is not a domain name: use e.g. quangtri.gov.vn")
    return value


def normalise_abbreviation(abbreviation: str, what: str = "abbreviation") -> str:
    """An agency, unit, commune or district abbreviation as it appears in an address.

    Folded and lower-cased (``"SởKHCN"`` -> ``"sokhcn"``); refused unless it is then ASCII
    letters and digits starting with a letter. ``what`` names the input in messages.
    """
    if not isinstance(abbreviation, str) or not _clean(abbreviation):
        raise NamingError(f"{what} {abbreviation!r} is empty: give the short name, e.g. sokhcn")
    text = _clean(abbreviation)
    if " " in text:
        words = text.split(" ")
        if any(fold(word) == "va" for word in words):
            kept = "".join(fold(word) for word in words if fold(word) != "va")
            raise NamingError(
                f"{what} {abbreviation!r} contains the word 'và', which abbreviations leave out: "
                f"write it joined without it, e.g. {kept!r}"
            )
        raise NamingError(
            f"{what} {abbreviation!r} contains a space: write it joined, without diacritics, "
            f"e.g. {fold(text.replace(' ', ''))!r}"
        )
    for char, rule in (("-", "'-'"), (",", "','")):
        if char in text:
            raise NamingError(
                f"{what} {abbreviation!r} contains {rule}, which addresses may not hold: "
                f"write it joined, e.g. {fold(text.replace(char, ''))!r}"
            )
    if "." in text:
        raise NamingError(
            f"{what} {abbreviation!r} contains '.': give the unit alone and its agency as the parent "
            "(the dot is added between them)"
        )
    value = fold(text)
    for char in value:
        if not ("a" <= char <= "z" or "0" <= char <= "9"):
            raise NamingError(f"{what} {abbreviation!r} contains {_describe(char)}: use ASCII letters and digits only")
    if not _ABBREVIATION.match(value):
        raise NamingError(f"{what} {abbreviation!r} starts with a digit: start it with a letter")
    if len(value) > LOCAL_PART_MAX:
        raise NamingError(f"{what} {abbreviation!r} has {len(value)} characters: use at most {LOCAL_PART_MAX}")
    return value


def _agency_local(agency: str) -> str:
    """The local part of an agency mailbox: ``sokhcn`` or ``vp.sokhcn`` (sub-unit)."""
    if not isinstance(agency, str) or not agency.strip():
        raise NamingError(f"agency {agency!r} is empty: give the agency's abbreviation, e.g. sokhcn")
    parts = agency.strip().split(".")
    return ".".join(normalise_abbreviation(part, "agency") for part in parts)


def _address(local: str, domain: str, source: str) -> str:
    if len(local) > LOCAL_PART_MAX:
        raise NamingError(
            f"address for {source!r} would have {len(local)} characters before the @ "
            f"({local}), more than the {LOCAL_PART_MAX} mail allows: register a shorter form by hand"
        )
    address = f"{local}@{domain}"
    if len(address) > ADDRESS_MAX:
        raise NamingError(f"address {address} for {source!r} is longer than {ADDRESS_MAX} characters")
    return address


def _taken_locals(taken: Collection[str], domain: str) -> set[str]:
    """Local parts of ``taken`` (local parts or addresses; other domains ignored), lower-cased."""
    locals_: set[str] = set()
    for entry in taken:
        local, at, entry_domain = entry.strip().lower().rpartition("@")
        if not at:
            locals_.add(entry_domain)
        elif entry_domain == domain:
            locals_.add(local)
    return locals_


def personal_address(
    full_name: str,
    agency: str,
    domain: str,
    profile: PolicyProfile,
    taken: Collection[str] = (),
) -> str:
    """A person's address under ``profile``, avoiding every address in ``taken``.

    ``agency`` is the local part of the person's agency mailbox (``sokhcn``, or ``vp.sokhcn``
    for a sub-unit); it is part of the address in the ``given-initials-agency`` format and
    checked in both. ``taken`` holds the local parts or addresses already in use in ``domain``
    (agency mailboxes included, since NB/LC personal addresses share their shape).
    """
    family, middle, given = split_name(full_name)
    domain = _domain(domain)
    agency_local = _agency_local(agency)
    if profile.address_format == "fullname":
        base = "".join(_fold_word(word, full_name) for word in (family, *middle, given))
        suffix = ""
    elif profile.address_format == "given-initials-agency":
        initials = "".join(_fold_word(word, full_name)[0] for word in (family, *middle))
        base = _fold_word(given, full_name) + initials
        suffix = "." + agency_local
    else:
        raise NamingError(
            f"policy profile {profile.name} has address format {profile.address_format!r}: "
            "use fullname or given-initials-agency"
        )
    pattern = re.compile(rf"^{re.escape(base)}(|[1-9][0-9]*){re.escape(suffix)}$")
    numbers = [int(match.group(1) or 0) for local in _taken_locals(taken, domain) if (match := pattern.match(local))]
    number = max(numbers) + 1 if numbers else 0
    local = f"{base}{number or ''}{suffix}"
    return _address(local, domain, full_name)


def agency_address(abbreviation: str, domain: str, parent: str | None = None) -> str:
    """``<abbreviation>@domain``, or ``<abbreviation>.<parent>@domain`` for a sub-unit or commune.

    ``agency_address("sokhcn", "quangtri.gov.vn")`` -> ``sokhcn@quangtri.gov.vn``;
    ``agency_address("vp", d, parent="sokhcn")`` -> ``vp.sokhcn@d``;
    ``agency_address("tanthanh", d, parent="kimson")`` -> ``tanthanh.kimson@d`` (commune, district).
    """
    domain = _domain(domain)
    local = normalise_abbreviation(abbreviation)
    if parent is not None:
        local = f"{local}.{normalise_abbreviation(parent, 'parent abbreviation')}"
    return _address(local, domain, abbreviation)


def base_dn(domain: str) -> str:
    """The directory suffix of a mail domain, one ``dc`` per label (RFC 2247).

    ``quangtri.gov.vn`` -> ``dc=quangtri,dc=gov,dc=vn``. The roles derive the shared fact
    ``govmail_ldap_base_dn`` with this (the ``govmail_base_dn`` filter); a site may set another.
    Raises :class:`NamingError` when ``domain`` is not a lower-case domain name.
    """
    if not isinstance(domain, str) or not _DOMAIN.match(domain):
        hint = " in lower case" if isinstance(domain, str) and _DOMAIN.match(domain.lower()) else ""
        raise NamingError(f"govmail_domain {domain!r} is not a domain name: write it{hint} like quangtri.gov.vn")
    return ",".join(f"dc={label}" for label in domain.split("."))
