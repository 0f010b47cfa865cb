"""Given-name variants: the packaged data, its loader and its validation."""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path

import pytest

from core.nicknames import NameVariants, default_variants, normalise_given

# The pairs the issue names, with accented input as practitioners type it.
REQUIRED = [
    ("Siobhan", "Chivonne"),
    ("Siobhán", "Chivonne"),
    ("Niamh", "Neve"),
    ("Aoife", "Eva"),
    ("Aoífe", "Eva"),
    ("Mohammed", "Muhammad"),
    ("William", "Bill"),
    ("Elizabeth", "Liz"),
    ("Aleksander", "Alexander"),
    ("Oisín", "Osheen"),
    ("Oisin", "Osheen"),
]

MORE_POSITIVE = [
    # English diminutives
    ("Robert", "Bob"),
    ("Margaret", "Peggy"),
    ("Edward", "Ted"),
    ("Katherine", "Kitty"),
    ("Catherine", "Kate"),
    ("Alexander", "Sandy"),
    ("James", "Jimmy"),
    ("Charlotte", "Lottie"),
    ("Charles", "Chuck"),
    ("Henry", "Harry"),
    ("John", "Jack"),
    ("Abigail", "Abbie"),
    ("Isabella", "Izzy"),
    ("Rebecca", "Becky"),
    ("Victoria", "Tori"),
    ("Theodore", "Theo"),
    ("Alfred", "Alfie"),
    ("Archibald", "Archie"),
    ("Jonathan", "Jonny"),
    ("Sophie", "Sophia"),
    # unisex short forms link to both sexes' full names
    ("Sam", "Samuel"),
    ("Sam", "Samantha"),
    ("Alex", "Alexandra"),
    ("Chris", "Christine"),
    ("Charlie", "Charlotte"),
    ("Charlie", "Charles"),
    # Irish
    ("Sinéad", "Shinead"),
    ("Caoimhe", "Keeva"),
    ("Saoirse", "Seersha"),
    ("Pádraig", "Patrick"),
    ("Ciarán", "Kieran"),
    ("Eoin", "Owen"),
    ("Róisín", "Rosheen"),
    ("Tadhg", "Teague"),
    ("Diarmuid", "Dermot"),
    ("Gráinne", "Grania"),
    # Scottish
    ("Mhairi", "Vari"),
    ("Catriona", "Katrina"),
    ("Ruaridh", "Rory"),
    ("Seonaid", "Shona"),
    ("Lachlan", "Lachie"),
    ("Eilidh", "Ailie"),
    # Welsh
    ("Dafydd", "David"),
    ("Dafydd", "Dai"),
    ("Gwilym", "William"),
    ("Rhys", "Reece"),
    ("Ieuan", "Evan"),
    ("Llywelyn", "Llewellyn"),
    ("Huw", "Hugh"),
    ("Siân", "Shan"),
    # Arabic and Somali transliterations
    ("Mohamed", "Maxamed"),
    ("Mohd", "Mohammad"),
    ("Ahmed", "Ahmad"),
    ("Mustafa", "Mostafa"),
    ("Yusuf", "Youssef"),
    ("Fatima", "Faadumo"),
    ("Aisha", "Ayesha"),
    ("Khadija", "Khadeejah"),
    ("Hussein", "Hussain"),
    ("Omar", "Umar"),
    ("Uthman", "Osman"),
    ("Zainab", "Zeynep"),
    ("Abdirahman", "Cabdiraxmaan"),
    ("Abdi", "Cabdi"),
    ("Mohamud", "Mahmoud"),
    ("Yasmin", "Yasmeen"),
    # South Asian
    ("Harpreet", "Harprit"),
    ("Lakshmi", "Laxmi"),
    ("Siddharth", "Sid"),
    ("Pooja", "Puja"),
    # Eastern European
    ("Wojciech", "Wojtek"),
    ("Małgorzata", "Gosia"),
    ("Jakub", "Kuba"),
    ("Jakub", "Jacob"),
    ("Paweł", "Paul"),
    ("Michał", "Michael"),
    ("Łukasz", "Luke"),
    ("Krzysztof", "Christopher"),
    ("Elżbieta", "Elizabeth"),
    ("Ştefan", "Stephen"),
    ("Ionuț", "Ion"),
    ("Dmitri", "Dmitry"),
    ("Ekaterina", "Katya"),
    ("Mykola", "Nikolai"),
    ("Oleksandr", "Aleksandr"),
    # Nigerian and Ghanaian
    ("Oluwaseun", "Seun"),
    ("Chukwuemeka", "Emeka"),
    ("Adebayo", "Bayo"),
    ("Oluwatobi", "Tobi"),
    ("Kwasi", "Kwesi"),
    # Spelling variants of modern names
    ("Jayden", "Jaiden"),
    ("Aiden", "Aidan"),
    ("Hayley", "Hailey"),
    ("Freya", "Freja"),
    ("Zoe", "Zoey"),
    ("Leah", "Lea"),
    ("Reuben", "Ruben"),
    ("Lily", "Lillie"),
]

NEGATIVE = [
    # different sex
    ("William", "Wilma"),
    ("Oliver", "Olivia"),
    ("Daniel", "Danielle"),
    ("Jack", "Jacqueline"),
    ("John", "Joan"),
    ("Francis", "Frances"),
    ("Samuel", "Samantha"),
    ("Alexander", "Alexandra"),
    ("Christopher", "Christine"),
    ("George", "Georgia"),
    ("Charles", "Charlotte"),
    ("Julian", "Julia"),
    ("Jesse", "Jessica"),
    ("Louis", "Louise"),
    ("Nicholas", "Nicola"),
    ("Paul", "Paula"),
    ("Ali", "Alice"),
    ("Isa", "Isabella"),
    ("Joel", "Joelle"),
    # distinct names that share a root, a sound or a short form
    ("Amelia", "Emily"),
    ("Ahmed", "Mohammed"),
    ("Mohamud", "Mohammed"),
    ("Ella", "Nora"),
    ("Noah", "Noa"),
    ("Mia", "Maria"),
    ("Ava", "Eva"),
    ("Isla", "Ayla"),
    ("Zachary", "Isaac"),
    ("Hassan", "Hussein"),
    ("Jasmine", "Jaswinder"),
    ("Lucy", "Lucas"),
    ("Henry", "Harold"),
    # cognates that are names in their own right: deliberately left out
    ("Sean", "John"),
    ("Ian", "John"),
    ("Ivan", "John"),
    ("Yusuf", "Joseph"),
    ("Sian", "Jane"),
]


@pytest.fixture(scope="module")
def variants() -> NameVariants:
    return default_variants()


@pytest.mark.parametrize(("a", "b"), REQUIRED + MORE_POSITIVE)
def test_variant_pairs(variants: NameVariants, a: str, b: str) -> None:
    assert variants.are_variants(a, b)
    assert variants.are_variants(b, a)
    assert variants.are_variants(a.upper(), b.lower())


@pytest.mark.parametrize(("a", "b"), NEGATIVE)
def test_not_variants(variants: NameVariants, a: str, b: str) -> None:
    assert not variants.are_variants(a, b)
    assert not variants.are_variants(b, a)


def test_identical_names_are_an_exact_match_not_a_variant(variants: NameVariants) -> None:
    assert variants.are_variants("Bill", "bill") is False
    assert variants.are_variants("Siobhán", "SIOBHAN") is False
    assert variants.are_variants("Bill", "William") is True


def test_unknown_names(variants: NameVariants) -> None:
    assert variants.groups_of("Qwertyuiop") == frozenset()
    assert not variants.are_variants("Qwertyuiop", "William")
    assert not variants.are_variants("William", "Qwertyuiop")
    assert not variants.are_variants("", "")
    assert variants.variants_of("Qwertyuiop") == frozenset()


def test_short_forms_shared_by_groups_do_not_chain(variants: NameVariants) -> None:
    assert len(variants.groups_of("alex")) >= 2
    assert variants.groups_of("Alexander") & variants.groups_of("alex")
    assert variants.groups_of("Alexandra") & variants.groups_of("alex")
    assert not variants.groups_of("Alexander") & variants.groups_of("Alexandra")


def test_variants_of(variants: NameVariants) -> None:
    bill = variants.variants_of("Bill")
    assert "william" in bill and "billy" in bill
    assert "bill" not in bill


def test_size_and_cache(variants: NameVariants) -> None:
    assert 600 <= len(variants) <= 1500
    assert default_variants() is variants


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Siobhán", "siobhan"),
        ("Aoífe", "aoife"),
        ("Oisín", "oisin"),
        ("Zoë", "zoe"),
        ("Łukasz", "lukasz"),
        ("Małgorzata", "malgorzata"),
        ("Elżbieta", "elzbieta"),
        ("Paweł", "pawel"),
        ("Ştefan", "stefan"),
        ("Ionuț", "ionut"),
        ("Søren", "soren"),
        ("Ægir", "aegir"),
        ("Strauß", "strauss"),
        ("Đorđe", "dorde"),
        ("İbrahim", "ibrahim"),
        ("François", "francois"),
        ("Mary-Jane", "maryjane"),
        ("  O'Neil ", "oneil"),
        ("Anne Marie", "annemarie"),
        ("J0hn", "jhn"),
        ("", ""),
    ],
)
def test_normalise_given(raw: str, expected: str) -> None:
    assert normalise_given(raw) == expected


# --- The data file itself -------------------------------------------------


def _data_lines() -> list[tuple[int, list[str]]]:
    text = files("core.data").joinpath("given_name_variants.txt").read_text(encoding="utf-8")
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip() and not line.lstrip().startswith("#"):
            rows.append((number, [name.strip() for name in line.split(",")]))
    return rows


def test_data_names_are_lowercase_a_to_z() -> None:
    bad = [(n, name) for n, names in _data_lines() for name in names if not re.fullmatch(r"[a-z]+", name)]
    assert bad == []


def test_data_groups_have_no_repeats_and_are_not_duplicated() -> None:
    seen: dict[frozenset[str], int] = {}
    for number, names in _data_lines():
        assert len(names) >= 2, number
        assert len(set(names)) == len(names), f"line {number} repeats a name"
        group = frozenset(names)
        assert group not in seen, f"line {number} duplicates line {seen[group]}"
        seen[group] = number


# --- Validation of a variants file ----------------------------------------


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "variants.txt"
    path.write_text(text, encoding="utf-8")
    return path


def test_load_from_path_skips_comments_and_blank_lines(tmp_path: Path) -> None:
    path = _write(tmp_path, "# heading\n\nwilliam, bill\n  # indented comment\nsiobhán, chivonne\n")
    loaded = NameVariants.load(path)
    assert len(loaded) == 2
    assert loaded.are_variants("Siobhan", "Chivonne")
    assert loaded.groups_of("bill") == frozenset({0})


def test_group_of_one_name_is_rejected_with_its_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "# heading\nwilliam, bill\n\nnewname\n")
    with pytest.raises(ValueError, match="line 4"):
        NameVariants.load(path)


def test_group_repeating_one_name_is_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path, "anna, Anna\n")
    with pytest.raises(ValueError, match="line 1"):
        NameVariants.load(path)


@pytest.mark.parametrize(
    "bad", ["bill, w1lliam", "bill, mary-jane", "bill, o'neil", "bill,", "bill, , will", "bill, 李", "bill; will"]
)
def test_name_not_a_to_z_is_rejected_with_its_line(tmp_path: Path, bad: str) -> None:
    path = _write(tmp_path, f"william, bill\n{bad}\n")
    with pytest.raises(ValueError, match="line 2"):
        NameVariants.load(path)
