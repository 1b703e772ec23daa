"""Addresses from Vietnamese names and abbreviations (REQUIREMENTS M2-M5)."""

from __future__ import annotations

import unicodedata

import pytest

from govmail import naming
from govmail.errors import NamingError
from govmail.policy import get_profile

QT = get_profile("quangtri-2026")
NB = get_profile("ninhbinh-2020")
LC = get_profile("laichau-2019")
DOMAIN = "quangtri.gov.vn"
AGENCY = "sokhcn"

# Full name -> local part under quangtri-2026 (full name) and ninhbinh-2020 (given name + initials,
# agency sokhcn). Real Vietnamese names: every letter (ă â đ ê ô ơ ư, upper and lower case), every
# tone (huyền, sắc, hỏi, ngã, nặng), ethnic-minority names with "'" and "-", compound family
# names, all-capitals and all-lower-case input as clerks type it, and untidy whitespace.
NAMES = [
    ("Nguyễn Văn Long", "nguyenvanlong", "longnv"),
    ("Trần Thị Thu Hương", "tranthithuhuong", "huongttt"),
    ("Lê Văn Đức", "levanduc", "duclv"),
    ("Đặng Thị Hằng", "dangthihang", "hangdt"),
    ("Phạm Quốc Việt", "phamquocviet", "vietpq"),
    ("Hoàng Minh Tuấn", "hoangminhtuan", "tuanhm"),
    ("Vũ Thị Ngọc Ánh", "vuthingocanh", "anhvtn"),
    ("Võ Thị Sáu", "vothisau", "sauvt"),
    ("Bùi Xuân Trường", "buixuantruong", "truongbx"),
    ("Đỗ Văn Dũng", "dovandung", "dungdv"),
    ("Hồ Thị Kim Oanh", "hothikimoanh", "oanhhtk"),
    ("Ngô Bảo Châu", "ngobaochau", "chaunb"),
    ("Dương Văn Mạnh", "duongvanmanh", "manhdv"),
    ("Lý Thị Mỹ Duyên", "lythimyduyen", "duyenltm"),
    ("Phan Thanh Hải", "phanthanhhai", "haipt"),
    ("Trương Thị Hồng Nhung", "truongthihongnhung", "nhungtth"),
    ("Đinh Tiến Dũng", "dinhtiendung", "dungdt"),
    ("Lâm Thị Thuỳ Dương", "lamthithuyduong", "duongltt"),
    ("Mai Văn Hiển", "maivanhien", "hienmv"),
    ("Tạ Quang Bửu", "taquangbuu", "buutq"),
    ("Cao Thị Ngữ", "caothingu", "nguct"),
    ("Châu Ngọc Lợi", "chaungocloi", "loicn"),
    ("Lương Thế Vinh", "luongthevinh", "vinhlt"),
    ("Quách Thị Ỷ Lan", "quachthiylan", "lanqty"),
    ("Tô Hoài Nam", "tohoainam", "namth"),
    ("Kiều Văn Tuất", "kieuvantuat", "tuatkv"),
    ("Ông Ích Khiêm", "ongichkhiem", "khiemoi"),
    ("Âu Dương Lân", "auduonglan", "lanad"),
    ("Ưng Hoàng Phúc", "unghoangphuc", "phucuh"),
    ("Nguyễn Văn Ẩn", "nguyenvanan", "annv"),
    ("Đoàn Thị Điểm", "doanthidiem", "diemdt"),
    ("Khổng Minh Ước", "khongminhuoc", "uockm"),
    ("Trịnh Văn Ổn", "trinhvanon", "ontv"),
    ("Lưu Hữu Phước", "luuhuuphuoc", "phuoclh"),
    ("Bế Văn Đàn", "bevandan", "danbv"),
    ("NGUYỄN THỊ NGỌC HẠNH", "nguyenthingochanh", "hanhntn"),
    ("TRẦN ĐỨC LƯƠNG", "tranducluong", "luongtd"),
    ("TRỊNH CÔNG SƠN", "trinhcongson", "sontc"),
    ("ĐẶNG THUỲ TRÂM", "dangthuytram", "tramdt"),
    ("Nguyễn Thị Thuỵ Khuê", "nguyenthithuykhue", "khuentt"),
    ("Phạm Thị Thụy Vy", "phamthithuyvy", "vyptt"),
    ("H'Hen Niê", "hhennie", "nieh"),
    ("Y-Moan Ênuôl", "ymoanenuol", "enuoly"),
    ("Giàng A Páo", "giangapao", "paoga"),
    ("Lò Văn Pằng", "lovanpang", "panglv"),
    ("Công Tằng Tôn Nữ Thị Phương Thảo", "congtangtonnuthiphuongthao", "thaocttntp"),
    ("Lê Lợi", "leloi", "loil"),
    ("lê thị đào", "lethidao", "daolt"),
    ("  Nguyễn   Thị\tBích   Ngọc ", "nguyenthibichngoc", "ngocntb"),
    ("Đào Duy Từ", "daoduytu", "tudd"),
    ("Huỳnh Thúc Kháng", "huynhthuckhang", "khanght"),
    ("Nguyễn Thị Định", "nguyenthidinh", "dinhnt"),
    ("Chu Văn An", "chuvanan", "ancv"),
    ("Nông Đức Mạnh", "nongducmanh", "manhnd"),
]
IDS = [qt for _, qt, _ in NAMES]


def nfd(text: str) -> str:
    return unicodedata.normalize("NFD", text)


# --- the name table --------------------------------------------------------------------------


def test_name_table_covers_every_vietnamese_letter_and_tone():
    letters = {nfd(char) for name, _, _ in NAMES for char in unicodedata.normalize("NFC", name)}
    modifiers = {"a": "\u0306\u0302", "e": "\u0302", "o": "\u0302\u031b", "u": "\u031b"}  # ă â ê ô ơ ư
    for base, marks in modifiers.items():
        for mark in marks:
            for case in (base, base.upper()):
                assert any(d[0] == case and mark in d[1:] for d in letters), unicodedata.normalize("NFC", case + mark)
    assert {"đ", "Đ"} <= letters
    for tone in ("\u0300", "\u0301", "\u0309", "\u0303", "\u0323"):  # huyền sắc hỏi ngã nặng
        assert any(tone in d for d in letters)
    assert len(NAMES) >= 40


@pytest.mark.parametrize(("name", "qt", "nb"), NAMES, ids=IDS)
def test_quangtri_address_is_the_full_name_without_diacritics(name, qt, nb):
    assert naming.personal_address(name, AGENCY, DOMAIN, QT) == f"{qt}@{DOMAIN}"


@pytest.mark.parametrize(("name", "qt", "nb"), NAMES, ids=IDS)
def test_ninhbinh_address_is_given_name_initials_and_agency(name, qt, nb):
    assert naming.personal_address(name, AGENCY, "ninhbinh.gov.vn", NB) == f"{nb}.{AGENCY}@ninhbinh.gov.vn"


@pytest.mark.parametrize(("name", "qt", "nb"), NAMES, ids=IDS)
def test_laichau_address_has_the_ninhbinh_shape(name, qt, nb):
    assert naming.personal_address(name, AGENCY, "laichau.gov.vn", LC) == f"{nb}.{AGENCY}@laichau.gov.vn"


@pytest.mark.parametrize(("name", "qt", "nb"), NAMES, ids=IDS)
def test_decomposed_input_gives_the_same_address_as_precomposed(name, qt, nb):
    assert nfd(name) != name or name.isascii()
    assert naming.personal_address(nfd(name), AGENCY, DOMAIN, QT) == f"{qt}@{DOMAIN}"
    assert naming.personal_address(nfd(name), AGENCY, DOMAIN, NB) == f"{nb}.{AGENCY}@{DOMAIN}"


# --- folding ---------------------------------------------------------------------------------

VOWELS = {"a": "a", "ă": "a", "â": "a", "e": "e", "ê": "e", "i": "i", "o": "o", "ô": "o", "ơ": "o"}
VOWELS |= {"u": "u", "ư": "u", "y": "y"}
TONES = {"ngang": "", "huyen": "\u0300", "sac": "\u0301", "hoi": "\u0309", "nga": "\u0303", "nang": "\u0323"}


@pytest.mark.parametrize("tone", TONES.values(), ids=list(TONES))
@pytest.mark.parametrize(("vowel", "plain"), VOWELS.items(), ids=list(VOWELS))
def test_every_toned_vowel_folds_to_its_ascii_letter_in_every_form(vowel, plain, tone):
    precomposed = unicodedata.normalize("NFC", vowel + tone)
    assert len(precomposed) == 1
    for form in (precomposed, precomposed.upper(), nfd(precomposed), nfd(precomposed.upper())):
        assert naming.fold(form) == plain


def test_fold_turns_the_whole_alphabet_into_ascii():
    alphabet = (
        "aàáảãạ ăằắẳẵặ âầấẩẫậ bcdđ eèéẻẽẹ êềếểễệ ghiìíỉĩị klmn oòóỏõọ ôồốổỗộ ơờớởỡợ pqrst uùúủũụ ưừứửữự vx yỳýỷỹỵ"
    )
    expected = (
        "aaaaaa aaaaaa aaaaaa bcdd eeeeee eeeeee ghiiiiii klmn oooooo oooooo oooooo pqrst uuuuuu uuuuuu vx yyyyyy"
    )
    assert naming.fold(alphabet) == expected
    assert naming.fold(alphabet.upper()) == expected


def test_fold_maps_d_with_stroke_and_its_legacy_lookalike_to_d():
    assert naming.fold("đĐ\u00d0\u00f0") == "dddd"


def test_fold_leaves_characters_without_ascii_form():
    assert naming.fold("王 ß") == "王 ß"


# --- splitting -------------------------------------------------------------------------------


def test_split_name_gives_family_middle_names_and_given_name():
    assert naming.split_name(" Trần  Thị Thu\u00a0Hương ") == ("Trần", ["Thị", "Thu"], "Hương")


def test_split_name_of_two_words_has_no_middle_name():
    assert naming.split_name("Lê Lợi") == ("Lê", [], "Lợi")


def test_split_name_returns_precomposed_words_for_decomposed_input():
    assert naming.split_name(nfd("Đặng Thuỳ Trâm")) == ("Đặng", ["Thuỳ"], "Trâm")


def test_invisible_characters_pasted_from_office_files_are_dropped():
    assert naming.personal_address("\ufeffNguyễn Văn\u200b Long", AGENCY, DOMAIN, QT) == f"nguyenvanlong@{DOMAIN}"


@pytest.mark.parametrize("apostrophe", ["'", "\u2019", "\u02bc"], ids=["ascii", "right-quote", "modifier"])
def test_any_apostrophe_inside_a_name_is_dropped_from_the_address(apostrophe):
    assert naming.personal_address(f"H{apostrophe}Hen Niê", AGENCY, DOMAIN, QT) == f"hhennie@{DOMAIN}"


# --- namesakes -------------------------------------------------------------------------------


def qt_address(taken):
    return naming.personal_address("Nguyễn Văn Long", AGENCY, DOMAIN, QT, taken)


def test_first_quangtri_namesake_gets_the_plain_address():
    assert qt_address([]) == f"nguyenvanlong@{DOMAIN}"


def test_second_quangtri_namesake_gets_number_1():
    assert qt_address(["nguyenvanlong"]) == f"nguyenvanlong1@{DOMAIN}"


def test_third_quangtri_namesake_gets_number_2():
    assert qt_address(["nguyenvanlong", "nguyenvanlong1"]) == f"nguyenvanlong2@{DOMAIN}"


def test_namesake_numbers_only_increase_and_never_fill_a_gap():
    assert qt_address(["nguyenvanlong", "nguyenvanlong2"]) == f"nguyenvanlong3@{DOMAIN}"


def test_taken_addresses_may_be_full_addresses_in_any_case():
    assert qt_address([f"NguyenVanLong@{DOMAIN.upper()}"]) == f"nguyenvanlong1@{DOMAIN}"


def test_taken_addresses_of_another_domain_do_not_collide():
    assert qt_address(["nguyenvanlong@ninhbinh.gov.vn"]) == f"nguyenvanlong@{DOMAIN}"


def test_longer_names_sharing_the_prefix_do_not_collide():
    assert qt_address(["nguyenvanlongan", "nguyenvanlong01"]) == f"nguyenvanlong@{DOMAIN}"


def test_namesake_typed_differently_still_collides():
    taken = [qt_address([])]
    assert naming.personal_address("NGUYỄN  văn long", "vp", DOMAIN, QT, taken) == f"nguyenvanlong1@{DOMAIN}"


@pytest.mark.parametrize("profile", [NB, LC], ids=["ninhbinh-2020", "laichau-2019"])
def test_given_initials_namesakes_are_numbered_after_the_name_part(profile):
    first = naming.personal_address("Nguyễn Văn Long", AGENCY, DOMAIN, profile)
    second = naming.personal_address("Nguyễn Văn Long", AGENCY, DOMAIN, profile, [first])
    third = naming.personal_address("Nguyễn Văn Long", AGENCY, DOMAIN, profile, [first, second])
    assert [first, second, third] == [f"longnv.sokhcn@{DOMAIN}", f"longnv1.sokhcn@{DOMAIN}", f"longnv2.sokhcn@{DOMAIN}"]


def test_ninhbinh_namesakes_in_different_agencies_do_not_collide():
    taken = [f"longnv.sotc@{DOMAIN}"]
    assert naming.personal_address("Nguyễn Văn Long", AGENCY, DOMAIN, NB, taken) == f"longnv.sokhcn@{DOMAIN}"


def test_ninhbinh_address_of_a_sub_unit_member_carries_the_sub_unit():
    assert naming.personal_address("Nguyễn Văn Long", "vp.sokhcn", DOMAIN, NB) == f"longnv.vp.sokhcn@{DOMAIN}"


def test_ninhbinh_different_names_with_the_same_initials_collide():
    taken = [naming.personal_address("Nguyễn Văn Long", AGENCY, DOMAIN, NB)]
    assert naming.personal_address("Ngô Việt Long", AGENCY, DOMAIN, NB, taken) == f"longnv1.sokhcn@{DOMAIN}"


# --- refused names ---------------------------------------------------------------------------

REFUSED_NAMES = {
    "empty": ("", "is empty"),
    "only-spaces": ("   ", "is empty"),
    "digits": ("Nguyễn Văn Long 2", "digit '2'"),
    "chinese": ("王小明", "no ASCII form"),
    "at-sign": ("Nguyễn@Long", "'@'"),
    "comma": ("Nguyễn, Văn Long", "','"),
    "dot": ("Nguyễn V. Long", "'.'"),
    "one-word": ("Long", "one word"),
    "polish-l": ("Nguyễn Văn Łong", "no ASCII form"),
    "only-hyphen": ("Nguyễn - Long", "without letters"),
}


@pytest.mark.parametrize(("name", "message"), REFUSED_NAMES.values(), ids=list(REFUSED_NAMES))
def test_name_that_cannot_make_an_address_is_refused_with_its_name(name, message):
    with pytest.raises(NamingError, match="name") as caught:
        naming.personal_address(name, AGENCY, DOMAIN, QT)
    assert message in str(caught.value)
    assert repr(name) in str(caught.value)


def test_name_too_long_for_a_local_part_is_refused():
    name = "Nguyễn " + "Phương " * 12 + "Thảo"
    with pytest.raises(NamingError, match="more than the 64"):
        naming.personal_address(name, AGENCY, DOMAIN, QT)


def test_the_same_long_name_fits_in_the_initials_format():
    name = "Nguyễn " + "Phương " * 12 + "Thảo"
    assert naming.personal_address(name, AGENCY, DOMAIN, NB) == f"thaon{'p' * 12}.sokhcn@{DOMAIN}"


def test_bad_domain_is_refused():
    with pytest.raises(NamingError, match="'quangtri' is not a domain name"):
        naming.personal_address("Nguyễn Văn Long", AGENCY, "quangtri", QT)


def test_bad_agency_is_refused_even_where_the_address_does_not_show_it():
    with pytest.raises(NamingError, match="agency 'so-khcn'"):
        naming.personal_address("Nguyễn Văn Long", "so-khcn", DOMAIN, QT)


# --- agency, sub-unit and commune addresses --------------------------------------------------


def test_agency_address_is_the_abbreviation():
    assert naming.agency_address("sokhcn", DOMAIN) == f"sokhcn@{DOMAIN}"


def test_sub_unit_address_is_unit_dot_agency():
    assert naming.agency_address("vp", DOMAIN, parent="sokhcn") == f"vp.sokhcn@{DOMAIN}"


def test_commune_address_is_commune_dot_district():
    assert naming.agency_address("tanthanh", "ninhbinh.gov.vn", parent="kimson") == "tanthanh.kimson@ninhbinh.gov.vn"


def test_abbreviation_with_capitals_and_diacritics_is_folded():
    assert naming.agency_address("SởKHCN", DOMAIN) == f"sokhcn@{DOMAIN}"
    assert naming.agency_address(nfd("TânThành"), DOMAIN, parent="KimSơn") == f"tanthanh.kimson@{DOMAIN}"


@pytest.mark.parametrize("abbreviation", ["vaxx", "vanphong", "vangmachai", "thpt1"])
def test_abbreviation_with_joined_syllables_or_digits_is_accepted(abbreviation):
    assert naming.agency_address(abbreviation, DOMAIN) == f"{abbreviation}@{DOMAIN}"


REFUSED_ABBREVIATIONS = {
    "hyphen": ("so-khcn", "contains '-'"),
    "space": ("sở khcn", "contains a space"),
    "comma": ("khcn,vp", "contains ','"),
    "va-word": ("khcn và cn", "the word 'và'"),
    "va-word-ascii": ("khcn va cn", "the word 'và'"),
    "dot": ("vp.sokhcn", "contains '.'"),
    "ampersand": ("khcn&cn", "'&'"),
    "at-sign": ("sokhcn@", "'@'"),
    "chinese": ("科技厅", "ASCII letters and digits only"),
    "leading-digit": ("1khcn", "starts with a digit"),
    "empty": ("", "is empty"),
    "too-long": ("a" * 65, "at most 64"),
}


@pytest.mark.parametrize(("abbreviation", "message"), REFUSED_ABBREVIATIONS.values(), ids=list(REFUSED_ABBREVIATIONS))
def test_bad_abbreviation_is_refused_with_its_name(abbreviation, message):
    with pytest.raises(NamingError, match="abbreviation") as caught:
        naming.agency_address(abbreviation, DOMAIN)
    assert message in str(caught.value)
    assert repr(abbreviation) in str(caught.value)


def test_refused_abbreviation_message_suggests_the_joined_form():
    with pytest.raises(NamingError, match=r"e\.g\. 'sokhcn'"):
        naming.agency_address("Sở KHCN", DOMAIN)


def test_bad_parent_abbreviation_is_refused():
    with pytest.raises(NamingError, match="parent abbreviation 'so-khcn'"):
        naming.agency_address("vp", DOMAIN, parent="so-khcn")


@pytest.mark.parametrize(
    ("domain", "dn"),
    [("quangtri.gov.vn", "dc=quangtri,dc=gov,dc=vn"), ("example.org", "dc=example,dc=org")],
    ids=["quangtri", "example"],
)
def test_base_dn_has_one_dc_per_domain_label(domain, dn):
    assert naming.base_dn(domain) == dn


def test_an_invalid_domain_is_refused_with_an_example():
    with pytest.raises(NamingError, match=r"'not a domain' is not a domain name: write it like quangtri.gov.vn"):
        naming.base_dn("not a domain")


def test_an_upper_case_domain_is_refused_with_the_fix():
    with pytest.raises(NamingError, match=r"'QuangTri.Gov.VN' is not a domain name: write it in lower case like"):
        naming.base_dn("QuangTri.Gov.VN")
