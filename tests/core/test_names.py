"""core.names reads text as it looks: invisible characters, look-alike letters, compatibility forms."""

from __future__ import annotations

import random

import pytest

from core.names import (
    _unicode_words,
    _words,
    fold,
    latin_lookalikes,
    letters_key,
    name_problem,
    skeleton,
    strip_invisible,
    tokens,
)


@pytest.mark.parametrize("hidden", ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u202e", "\u3164"])
def test_invisible_characters_are_removed(hidden):
    assert strip_invisible(f"Char{hidden}les") == "Charles"


def test_cyrillic_and_greek_lookalikes_read_as_latin():
    assert latin_lookalikes("\u0421h\u0430rl\u0435s \u0392\u03b1ll") == "Charles Ball"


def test_skeleton_keeps_case_and_spacing_and_makes_compatibility_forms_plain():
    assert skeleton("Re \uff23\uff48\uff41\uff52\uff4c\uff45\uff53\u200bBall \uff11\uff18") == "Re CharlesBall 18"


def test_fold_still_keeps_other_scripts_out_of_latin():
    # Matching must not turn a Cyrillic name into a Latin one: only the justification check reads look-alikes.
    assert fold("\u0410\u043d\u043d\u0430") == ""
    assert fold(skeleton("\u0410\u043d\u043d\u0430")) == "aa"


@pytest.mark.parametrize(
    "text",
    [".", "", "\u200b\u200b", "\u3164", "J", "J. K.", "x", "xx", "Baby", "Baby Girl", "Ms", "Master", "Twin 1", "-"],
)
def test_what_is_not_a_name(text):
    reason = name_problem(text)
    assert reason and (not text.strip(". -") or text.strip(". -") not in reason)


@pytest.mark.parametrize(
    "text",
    ["Jo", "Li", "Amelia", "Ó Briain-Smith", "\u738b", "\uae40", "\u0410\u043d\u043d\u0430", "\u0645\u062d\u062f"],
)
def test_names_in_any_script_are_names(text):
    assert name_problem(text) is None


def test_letters_key_is_tokens_for_latin_names_and_keeps_other_scripts():
    for name in ("O'Brien-Smith", "Zoë", "Mac Donald", "Ｊｏｈｎ", "de la Cruz"):
        assert letters_key(name) == "".join(tokens(name))
    assert letters_key("\u738b\u5c0f\u660e") == "\u738b\u5c0f\u660e"
    assert letters_key("\u0410\u043d\u043d\u0430") == "\u0430\u043d\u043d\u0430"
    assert letters_key("Char\u200bles") == "charles"


def test_plain_ascii_reads_the_same_by_the_short_way_as_character_by_character():
    # _words takes a short way for ASCII text (most names); it must read exactly what the general way
    # reads, or a name's check and its audit hash would depend on which way was taken.
    rng = random.Random(18)
    alphabet = [chr(c) for c in range(128)]
    samples = ["", "Mary-Jane", "O'Brien", "J. K.", "x", "Baby", "Ms", "van der Berg", "Smith2", "\t\x00Ann\x7f"]
    samples += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12))) for _ in range(3000)]
    for text in samples:
        assert _words(text) == _unicode_words(text), repr(text)
