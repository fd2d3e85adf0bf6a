"""TCVN3 and VNI legacy text: tables, detection and the batch transform on tiny inline tables."""

from __future__ import annotations

import unicodedata

import pyarrow as pa
import pytest

from transforms.legacy_text import (
    TCVN3_ENCODE,
    VIETNAMESE_LETTERS,
    VNI_ENCODE,
    decode_legacy,
    decode_legacy_text,
    detect_legacy,
    encode_legacy,
)
from transforms.registry import resolve
from transforms.syllables import is_syllable

NAMES = [
    "Nguyễn Văn An",
    "Trần Thị Bích Ngọc",
    "Hoàng Thị Hương",
    "Phạm Đức Thắng",
    "Đỗ Quốc Việt",
    "Mường Khương",
    "Thành phố Hồ Chí Minh",
    "Công ty TNHH Nước sạch Hà Nội",
    "Ủy ban nhân dân tỉnh Yên Bái",
    "Đắk Lắk",
    "Phường Phủ Lý",
    "NGUYỄN VĂN AN",
    "ÔNG ÍCH KHIÊM",
    "Trạm bơm Ấp Bắc",
]


def batch(**columns: list) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict(columns)


# -- tables ---------------------------------------------------------------------------------------


def test_the_alphabet_has_134_precomposed_letters() -> None:
    assert len(VIETNAMESE_LETTERS) == len(set(VIETNAMESE_LETTERS)) == 134
    assert sum(c.islower() for c in VIETNAMESE_LETTERS) == 67
    assert all(unicodedata.is_normalized("NFC", c) and len(c) == 1 for c in VIETNAMESE_LETTERS)
    assert {"đ", "Đ", "ơ", "Ư", "ặ", "Ỵ", "ỹ"} <= set(VIETNAMESE_LETTERS)


@pytest.mark.parametrize(("encoding", "table"), [("tcvn3", TCVN3_ENCODE), ("vni", VNI_ENCODE)])
def test_every_letter_round_trips(encoding: str, table: dict[str, str]) -> None:
    assert set(table) == set(VIETNAMESE_LETTERS)
    decoded = {letter: decode_legacy(table[letter], encoding) for letter in VIETNAMESE_LETTERS}  # type: ignore[arg-type]
    assert decoded == {letter: letter for letter in VIETNAMESE_LETTERS}
    assert len(set(table.values())) == 134  # no two letters share a legacy spelling


@pytest.mark.parametrize("table", [TCVN3_ENCODE, VNI_ENCODE])
def test_legacy_spellings_are_printable_cp1252(table: dict[str, str]) -> None:
    """Every spelling is what a cp1252 column shows: no control character (soft hyphen aside)."""
    for spelling in table.values():
        assert spelling.encode("cp1252").decode("cp1252") == spelling
        assert all(unicodedata.category(c) != "Cc" for c in spelling)


@pytest.mark.parametrize("encoding", ["tcvn3", "vni"])
def test_the_whole_alphabet_is_detected_and_decoded(encoding: str) -> None:
    text = " ".join(VIETNAMESE_LETTERS)
    legacy = encode_legacy(text, encoding)  # type: ignore[arg-type]

    assert detect_legacy(legacy) == encoding
    assert decode_legacy(legacy) == text


def test_known_tcvn3_codes() -> None:
    """Spot checks against TCVN 5712:1993 (libiconv tcvn.h): ư is 0xAD, đ 0xAE, á 0xB8, ộ 0xE9."""
    assert TCVN3_ENCODE["ư"] == "\xad"
    assert TCVN3_ENCODE["đ"] == "®"
    assert TCVN3_ENCODE["á"] == "¸"
    assert TCVN3_ENCODE["ộ"] == "é"
    assert TCVN3_ENCODE["Đ"] == "§"


def test_known_vni_spellings() -> None:
    """Spot checks against VNI Windows: base letter then mark byte; đ, ơ, ư, ỵ and toned i in one byte."""
    assert VNI_ENCODE["ễ"] == "eã"
    assert VNI_ENCODE["Ắ"] == "AÉ"
    assert VNI_ENCODE["đ"] == "ñ"
    assert VNI_ENCODE["ư"] == "ö"
    assert VNI_ENCODE["ị"] == "ò"
    assert VNI_ENCODE["ỵ"] == "î"


def test_vn1_capitals_on_control_codes_decode_only_as_tcvn3() -> None:
    """TCVN 5712 VN1 puts Ý on 0x16 and Ọ on 0x96 (read '–'): decoded where the value reads as TCVN3."""
    assert decode_legacy("L\x16 V\x16", "tcvn3") == "LÝ VÝ"
    assert decode_legacy("NG–C TR\x16") == "NGỌC TRÝ"
    assert detect_legacy("Km 5 – QL1A") == "unicode"  # a spaced dash stays a dash


def test_decodes_the_simulator_tables() -> None:
    """The unit generator (units/legacy_text.py) builds its own tables; both must agree on every letter."""
    from units.legacy_text import TCVN3_TABLE, VNI_TABLE

    assert {c: decode_legacy(TCVN3_TABLE[c], "tcvn3") for c in VIETNAMESE_LETTERS} == {c: c for c in VIETNAMESE_LETTERS}
    assert {c: decode_legacy(VNI_TABLE[c], "vni") for c in VIETNAMESE_LETTERS} == {c: c for c in VIETNAMESE_LETTERS}


@pytest.mark.parametrize("name", NAMES)
def test_detects_what_the_simulator_encodes(name: str) -> None:
    from units.legacy_text import encode_tcvn3, encode_vni

    assert decode_legacy(encode_tcvn3(name)) == name
    assert decode_legacy(encode_vni(name)) == name


def test_c1_bytes_decode_whether_read_as_cp1252_or_latin1() -> None:
    """TCVN 5712 byte 0x80 is À: a cp1252 column shows it as '€', a latin-1 one as U+0080."""
    assert decode_legacy("€", "tcvn3") == "À"
    assert decode_legacy("\x80", "tcvn3") == "À"


# -- detection ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("legacy", "expected"),
    [
        ("B¸t X¸t", "Bát Xát"),
        ("B¶o Th¾ng", "Bảo Thắng"),
        ("NguyÔn V¨n An", "Nguyễn Văn An"),
        ("Hoµng ThÞ H\xad¬ng", "Hoàng Thị Hương"),
        ("x· Hoµ B×nh", "xã Hoà Bình"),
        ("Thµnh phè Hå ChÝ Minh", "Thành phố Hồ Chí Minh"),
    ],
)
def test_real_tcvn3_names(legacy: str, expected: str) -> None:
    assert detect_legacy(legacy) == "tcvn3"
    assert decode_legacy(legacy) == expected


@pytest.mark.parametrize(
    ("legacy", "expected"),
    [
        ("Nguyeãn Vaên An", "Nguyễn Văn An"),
        ("Tröôøng Ñaïi hoïc", "Trường Đại học"),
        ("Thaønh phoá Hoà Chí Minh", "Thành phố Hồ Chí Minh"),
        ("Phöôøng Phuû Lyù", "Phường Phủ Lý"),
        ("NGUYEÃN THÒ HOA", "NGUYỄN THỊ HOA"),
    ],
)
def test_real_vni_names(legacy: str, expected: str) -> None:
    assert detect_legacy(legacy) == "vni"
    assert decode_legacy(legacy) == expected


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("encoding", ["tcvn3", "vni"])
def test_names_round_trip_through_detection(name: str, encoding: str) -> None:
    legacy = encode_legacy(name, encoding)  # type: ignore[arg-type]

    assert detect_legacy(legacy) == encoding
    assert decode_legacy(legacy) == name


@pytest.mark.parametrize(
    "text", [*NAMES, "Hoàng Mai", "Hoà Bình", "Müller", "José", "30 m²", "25°C", "Hà Nội · 2024", "TNHH ABC", ""]
)
def test_unicode_is_recognised(text: str) -> None:
    assert detect_legacy(text) == "unicode"
    assert decode_legacy(text) == text


def test_all_capital_font_text_is_upper_cased() -> None:
    """TCVN3 has no toned capitals: .VnTimeH fonts drew the lowercase codes as capitals."""
    assert decode_legacy("Hµ NéI") == "HÀ NỘI"
    assert decode_legacy("NGUYÔN V¡N AN") == "NGUYỄN VĂN AN"


def test_capital_written_as_base_and_lowercase_letter() -> None:
    """Some converters write Ấ as Â + ấ ('¢Ê'); the pair is read as the capital."""
    assert decode_legacy("¢Êp B¾c") == "Ấp Bắc"


@pytest.mark.parametrize("text", ["Nguy\ufffdn", "B\x01t X\x01t", "Nguy\x85n V\x85n", "Nguyễn V¨n"])
def test_damaged_text_is_unknown(text: str) -> None:
    assert detect_legacy(text) == "unknown"
    with pytest.raises(ValueError, match="cannot decode"):
        decode_legacy(text)


def test_syllable_shape() -> None:
    for word in ("nguyễn", "Trường", "khuỷu", "quý", "giữ", "già", "hoà", "hòa", "Đắk", "xoong", "ngoài"):
        assert is_syllable(word), word
    for word in ("nguyeãn", "aù", "trònh", "thđy", "ỹn", "hàc", "Müller"):
        assert not is_syllable(word), word


# -- the batch transform --------------------------------------------------------------------------


def test_decode_legacy_text_decodes_legacy_and_keeps_unicode() -> None:
    nfd = unicodedata.normalize("NFD", "Lê Văn Tám")
    raw = batch(holder=["NguyÔn V¨n An", "Nguyeãn Vaên An", "Trần Thị Bích", None, nfd, "ABC"], n=[1, 2, 3, 4, 5, 6])

    out = decode_legacy_text(raw, columns=["holder"])

    assert out.column("holder").to_pylist() == ["Nguyễn Văn An", "Nguyễn Văn An", "Trần Thị Bích", None, nfd, "ABC"]
    assert out.schema == raw.schema
    assert out.column("n").to_pylist() == [1, 2, 3, 4, 5, 6]


def test_decode_legacy_text_returns_unicode_columns_untouched() -> None:
    raw = batch(holder=["Trần Thị Bích", None])
    out = decode_legacy_text(raw, columns=["holder"]).column("holder")
    assert out.buffers()[2].address == raw.column("holder").buffers()[2].address  # the same data, not a copy


def test_undecodable_value_names_column_row_and_value() -> None:
    raw = batch(holder=["Nguyễn Văn An", "NguyÔn V¨n An", "L\ufffd V\ufffdn"])

    with pytest.raises(ValueError) as err:
        decode_legacy_text(raw, columns=["holder"])

    message = str(err.value)
    assert "'holder'" in message
    assert "row 2" in message
    assert "'L\ufffd V\ufffdn'" in message


def test_control_character_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"column 'holder', row 0: cannot decode 'B\\x01t'"):
        decode_legacy_text(batch(holder=["B\x01t"]), columns=["holder"])


def test_ambiguous_value_follows_the_column_majority() -> None:
    """'Cö' is VNI 'Cư' or TCVN3 'Cử': the other values of the column tell which."""
    raw = batch(place=["Cö M'gar", "Nguyeãn Vaên An", "Leâ Thò Hoàng"])
    assert decode_legacy_text(raw, columns=["place"]).column("place").to_pylist()[0] == "Cư M'gar"


def test_ambiguous_value_alone_is_an_error_unless_the_encoding_is_named() -> None:
    raw = batch(place=["Cö M'gar"])

    with pytest.raises(ValueError, match=r"column 'place', row 0: cannot decode \"Cö M'gar\": it reads equally"):
        decode_legacy_text(raw, columns=["place"])
    assert decode_legacy_text(raw, columns=["place"], encodings=["vni"]).column("place").to_pylist() == ["Cư M'gar"]


def test_missing_and_non_text_columns() -> None:
    with pytest.raises(KeyError, match="nope"):
        decode_legacy_text(batch(a=["x"]), columns=["nope"])
    with pytest.raises(TypeError, match="'a'"):
        decode_legacy_text(batch(a=[1]), columns=["a"])
    with pytest.raises(ValueError, match="unknown encoding"):
        decode_legacy_text(batch(a=["x"]), columns=["a"], encodings=["viqr"])  # type: ignore[list-item]


def test_registered() -> None:
    assert resolve("decode_legacy_text") is decode_legacy_text
