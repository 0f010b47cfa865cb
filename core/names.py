"""What a name is, written once: folding, splitting into parts, placeholders.

The broker's justification check, the audit log's subject hashes and the
node's matcher all see a name through these functions, so that
"O'Brien-Smith", "obrien smith" and "Ó Briain-Smith" meet on equal terms
everywhere: case-folded, accents and punctuation stripped, hyphenated and
double-barrelled surnames split into parts, particles joined ("Mac Donald" =
"MacDonald"), placeholder names ("Baby", "Twin 1", "Unknown") treated as
missing. Pure functions, no I/O; nothing here logs.

:func:`skeleton` reads text as it looks rather than as it is encoded
(compatibility forms, invisible characters, Cyrillic and Greek look-alikes):
a check that a name is absent from free text needs it, because a name can be
written to look right and compare wrong. Matching records must not use it, as
Cyrillic and Greek names are data.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

# Names a record holds before a child is named, or when the name is not known.
PLACEHOLDERS = frozenset(
    {
        "baby",
        "babyboy",
        "babygirl",
        "boy",
        "girl",
        "infant",
        "newborn",
        "unknown",
        "unnamed",
        "notknown",
        "nk",
        "na",
        "none",
        "twin",
        "twina",
        "twinb",
        "twin1",
        "twin2",
        "twinone",
        "twintwo",
        "child",
        "bb",
        "bg",
        "babyof",
        "male",
        "female",
        "xx",
        "xxx",
        "test",
    }
)
# Titles written where a given name belongs ("Ms", "Master"): like a placeholder, they name nobody.
TITLES = frozenset({"mr", "mrs", "ms", "miss", "mstr", "master", "mx", "dr"})
_SPECIAL = str.maketrans(
    {"ł": "l", "ø": "o", "æ": "ae", "œ": "oe", "ß": "ss", "đ": "d", "ð": "d", "þ": "th", "ı": "i", "ħ": "h", "ŀ": "l"}
)
# Characters that render as nothing or as a blank, outside the format category (Cf) that holds most of
# them (zero-width space and joiners, soft hyphen, bidirectional marks, word joiner): Hangul fillers,
# the braille blank and the combining grapheme joiner.
_INVISIBLE = frozenset("\u115f\u1160\u3164\uffa0\u2800\u034f")
# Letters of other scripts drawn like Latin letters (after Unicode's confusables list, the common ones).
_LOOKALIKES = str.maketrans(
    "АВСЕНІЈКМОРЅТХУҮԀԚԜӀасеһіјорѕхуԁԛԝӏүѵё"  # Cyrillic
    "ΑΒΕΖΗΙΚΜΝΟΡΤΥΧαικνορτυχϲεγϳ"  # Greek
    "ɑɡɩʟօսհո",  # phonetic Latin, Armenian
    "ABCEHIJKMOPSTXYYDQWIacehijopsxydqwlyveABEZHIKMNOPTYXaikvoptuxceyjagiLouhn",
)
_SPLIT = re.compile(r"[\s\-‐‑–—_/.,;]+")
# Particles that are written with or without a space: "Mac Donald" = "MacDonald", "De Souza" = "DeSouza".
_PARTICLES = frozenset(
    {
        "mac",
        "mc",
        "o",
        "de",
        "da",
        "di",
        "del",
        "della",
        "van",
        "von",
        "der",
        "le",
        "la",
        "st",
        "al",
        "el",
        "bin",
        "ibn",
        "ben",
    }
)


@lru_cache(maxsize=200_000)
def fold(text: str) -> str:
    """Case-fold and strip accents; keep letters and spaces only."""
    decomposed = unicodedata.normalize("NFKD", text.casefold().translate(_SPECIAL))
    kept = [c if c.isalpha() else " " for c in decomposed if not unicodedata.combining(c)]
    return " ".join("".join(c for c in "".join(kept) if c == " " or ("a" <= c <= "z")).split())


def tokens(text: str) -> tuple[str, ...]:
    """Name parts: 'Smith-Jones' -> ('smith', 'jones'); particles joined: 'Mac Donald' -> ('macdonald',)."""
    parts = [fold(p) for p in _SPLIT.split(text)]
    words = [w for p in parts for w in p.split() if w]
    out: list[str] = []
    open_particle = False  # the last token is only particles so far ("de", "dela"): the next word joins it
    for word in words:
        if out and open_particle:
            out[-1] += word
        else:
            out.append(word)
        open_particle = word in _PARTICLES and (len(out) > 1 or len(words) > 1)
    return tuple(out)


def name_key(text: str) -> str:
    """The whole name as one comparable string ('' for a placeholder)."""
    joined = "".join(tokens(text))
    return "" if joined in PLACEHOLDERS or is_placeholder(text) else joined


def is_placeholder(text: str) -> bool:
    parts = tokens(text)
    return not parts or "".join(parts) in PLACEHOLDERS or all(p in PLACEHOLDERS or p in TITLES for p in parts)


def first_token(text: str) -> str:
    parts = tokens(text)
    return "" if not parts or is_placeholder(text) else parts[0]


def strip_invisible(text: str) -> str:
    """Remove characters that render as nothing: 'Char\u200bles' -> 'Charles'."""
    return "".join(c for c in text if c not in _INVISIBLE and unicodedata.category(c) != "Cf")


def latin_lookalikes(text: str) -> str:
    """Cyrillic and Greek letters drawn like Latin ones, as those Latin letters: 'Сhаrles' -> 'Charles'."""
    return text.translate(_LOOKALIKES)


def skeleton(text: str) -> str:
    """Text as it looks: compatibility forms made plain (NFKC: fullwidth and mathematical letters,
    fullwidth digits), invisible characters removed, look-alike letters as Latin; case and spacing kept."""
    return latin_lookalikes(strip_invisible(unicodedata.normalize("NFKC", text)))


# --- Whether a searched name is a name ---------------------------------------------------------------
# Scripts in which one character is a whole syllable or word: a Chinese family name is one ideograph,
# a Korean one one Hangul syllable, so one of these is a name where one Latin letter is an initial.
_SYLLABLE_NAMES = ("CJK UNIFIED IDEOGRAPH", "CJK COMPATIBILITY IDEOGRAPH", "HANGUL SYLLABLE")


_ASCII_WORD = re.compile("[a-z]+")


def _ascii_letters(char: str) -> str:
    """The a-z letters ``char`` decomposes into ('é' -> 'e', 'Ａ' -> 'a'), as :func:`fold` keeps them."""
    return "".join(c for c in unicodedata.normalize("NFKD", char) if "a" <= c <= "z")


def _words(text: str) -> list[str]:
    """The name's words in letters of any script: Latin ones as :func:`fold` reads them, others
    case-folded (NFKC) with their marks; invisible characters, digits and punctuation separate nothing
    into letters."""
    if text.isascii():
        # What _unicode_words reads from plain ASCII (most names): runs of a-z, anything else separating
        # them; without its per-character Unicode look-ups, which were most of checking a query's names.
        return _ASCII_WORD.findall(text.lower())
    return _unicode_words(text)


def _unicode_words(text: str) -> list[str]:
    """:func:`_words` for text in any script, a character at a time."""
    words: list[str] = []
    current: list[str] = []
    # A mark after a Latin letter is an accent fold() drops; after a letter of another script it is part of it.
    latin_before = False
    for char in unicodedata.normalize("NFC", strip_invisible(text).casefold().translate(_SPECIAL)):
        ascii_form = _ascii_letters(char)
        category = unicodedata.category(char)
        if ascii_form:
            current.append(ascii_form)
            latin_before = True
        elif category.startswith("L") or (category.startswith("M") and current and not latin_before):
            current.append(unicodedata.normalize("NFKC", char))
            latin_before = False
        elif not category.startswith("M"):
            if current:
                words.append("".join(current))
            current, latin_before = [], False
    if current:
        words.append("".join(current))
    return words


def letters_key(text: str) -> str:
    """The name's letters in any script as one string: for Latin names exactly ``"".join(tokens(text))``.

    The audit log hashes names with it, so a name written in Chinese, Arabic or Cyrillic has a subject
    hash (``tokens`` keeps only a-z, and such a search once had none: a subject access request could
    never find it).
    """
    return "".join(_words(text))


def _letter_count(word: str) -> int:
    return sum(1 for c in word if unicodedata.category(c).startswith("L") or "a" <= c <= "z")


def name_problem(text: str) -> str | None:
    """Why ``text`` is not a name a search may rest on, or None when it is. The reason never repeats it.

    A name has a part of two letters or more in any script (one CJK ideograph or Hangul syllable is a
    whole name), and is not a placeholder ("Baby", "Unknown") or a title ("Ms") alone. "." or zero-width
    spaces have no letters; "J" or "J. K." is initials only; "x" is one letter. Each of those once met
    the minimum query and located children by date of birth and postcode alone.
    """
    words = _words(text)
    if not words:
        return "has no letters"
    plain = text.isascii()  # then every word is a-z only: no syllable, and a letter per character
    if not plain and any(unicodedata.name(c, "").startswith(_SYLLABLE_NAMES) for word in words for c in word):
        return None
    if max(len(word) if plain else _letter_count(word) for word in words) < 2:
        return "is an initial or single letters, not a name"
    if all(word.isascii() for word in words) and is_placeholder(text):
        return "is a placeholder or a title, not a name"
    return None
