"""Legacy Vietnamese encodings: Unicode text turned into TCVN3 (ABC) or VNI, as old databases hold it.

Before Unicode became mandatory (Decision 72/2002/QĐ-TTg, DOMAIN.md §7) Vietnamese text was typed in
8-bit font encodings: TCVN3 ("ABC", fonts named .VnTime) with one byte per letter, and VNI Windows
(fonts named VNI-Times) with a base letter followed by a mark byte. The bytes went into columns the
database believed were Latin-1, so a modern database shows them as Windows-1252 text: "Nguyễn" reads
"NguyÔn" (TCVN3) or "Nguyeãn" (VNI). `encode_tcvn3` and `encode_vni` produce exactly that text; the
decoder in transforms/ inverts `TCVN3_TABLE` and `VNI_TABLE`.

Sources (two independent tables agreeing letter for letter, checked when this module was written):

- TCVN3: the TCVN 5712:1993 table of GNU libiconv / X11 (`lcUniConv/tcvn.h`, "TCVN-5712", e.g. in
  github.com/fcitx/xcb-imdkit src/xlibi18n/lcUniConv/tcvn.h) and the TCVN table of the xvnkb
  keyboard (github.com/lamdao/xvnkb tcvn.h). All 67 lower-case letters and the 7 capitals without a
  tone mark (Ă Â Ê Ô Ơ Ư Đ) sit where the ABC fonts put them (VN3, 0xA1-0xFE). Plain TCVN3 has no
  codes for the 60 capitals with a tone mark: ABC users typed them in the capital font (.VnTimeH)
  on the lower-case codes, losing the case. Here they take their TCVN 5712 VN1 positions
  (0x80-0x9F, a few free places in 0xAF-0xFF and, for 12 letters, the C0 controls 0x01-0x17) so
  that all 134 letters round-trip; xvnkb falls back to the lower-case code for those 12 instead.
- VNI Windows: xvnkb vni.h, and the VNI column of github.com/duydev/vietnamese-conversion
  src/charsets.ts; they agree on every letter.

Windows-1252 leaves 0x81, 0x8D, 0x8F, 0x90 and 0x9D undefined; like MySQL's `latin1` and the WHATWG
`windows-1252` decoder, those bytes show as the C1 controls U+0081 ... U+009D.
"""

from __future__ import annotations

import unicodedata

#: Tone marks in the order the tables below list them: none, grave, hook, tilde, acute, dot below.
_TONES: tuple[str, ...] = ("", "\u0300", "\u0309", "\u0303", "\u0301", "\u0323")

#: Base letters (lower case); each has six forms, one per tone, except đ.
_BASES: tuple[str, ...] = ("a", "ă", "â", "e", "ê", "i", "o", "ô", "ơ", "u", "ư", "y")

# TCVN3 byte values per base letter, in _TONES order; 0 means "the ASCII letter itself".
_TCVN3_LOWER: dict[str, tuple[int, ...]] = {
    "a": (0, 0xB5, 0xB6, 0xB7, 0xB8, 0xB9),
    "ă": (0xA8, 0xBB, 0xBC, 0xBD, 0xBE, 0xC6),
    "â": (0xA9, 0xC7, 0xC8, 0xC9, 0xCA, 0xCB),
    "e": (0, 0xCC, 0xCE, 0xCF, 0xD0, 0xD1),
    "ê": (0xAA, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6),
    "i": (0, 0xD7, 0xD8, 0xDC, 0xDD, 0xDE),
    "o": (0, 0xDF, 0xE1, 0xE2, 0xE3, 0xE4),
    "ô": (0xAB, 0xE5, 0xE6, 0xE7, 0xE8, 0xE9),
    "ơ": (0xAC, 0xEA, 0xEB, 0xEC, 0xED, 0xEE),
    "u": (0, 0xEF, 0xF1, 0xF2, 0xF3, 0xF4),
    "ư": (0xAD, 0xF5, 0xF6, 0xF7, 0xF8, 0xF9),
    "y": (0, 0xFA, 0xFB, 0xFC, 0xFD, 0xFE),
}
_TCVN3_UPPER: dict[str, tuple[int, ...]] = {
    "a": (0, 0x80, 0x81, 0x82, 0x83, 0x84),
    "ă": (0xA1, 0xAF, 0xBA, 0xBF, 0xC0, 0x85),
    "â": (0xA2, 0xC1, 0xC2, 0xC3, 0xC4, 0x86),
    "e": (0, 0x87, 0x88, 0x89, 0x8A, 0x8B),
    "ê": (0xA3, 0xC5, 0xCD, 0xD9, 0xDA, 0x8C),
    "i": (0, 0x8D, 0x8E, 0x8F, 0x90, 0x91),
    "o": (0, 0x92, 0x93, 0x94, 0x95, 0x96),
    "ô": (0xA4, 0xDB, 0xE0, 0xF0, 0xFF, 0x97),
    "ơ": (0xA5, 0x98, 0x99, 0x9A, 0x9B, 0x9C),
    "u": (0, 0x9D, 0x9E, 0x9F, 0x01, 0x02),  # Ú Ụ: C0 controls in VN1
    "ư": (0xA6, 0x04, 0x05, 0x06, 0x11, 0x12),  # Ừ Ử Ữ Ứ Ự: C0 controls in VN1
    "y": (0, 0x13, 0x14, 0x15, 0x16, 0x17),  # Ỳ Ỷ Ỹ Ý Ỵ: C0 controls in VN1
}
_TCVN3_D = {"đ": 0xAE, "Đ": 0xA7}

# VNI Windows, lower case; the upper-case table is the same text upper-cased (e.g. "ù" -> "Ù").
_VNI_TONE = ("", "ø", "û", "õ", "ù", "ï")  # after a, e, o, u, y, ơ (ô), ư (ö)
_VNI_CIRCUMFLEX = ("â", "à", "å", "ã", "á", "ä")  # after a, e, o: â ê ô with their tones
_VNI_BREVE = ("ê", "è", "ú", "ü", "é", "ë")  # after a: ă with its tones
_VNI_I = ("i", "ì", "æ", "ó", "í", "ò")  # i and its tones are single bytes
_VNI_LOWER: dict[str, tuple[str, ...]] = {
    "a": tuple("a" + m for m in _VNI_TONE),
    "ă": tuple("a" + m for m in _VNI_BREVE),
    "â": tuple("a" + m for m in _VNI_CIRCUMFLEX),
    "e": tuple("e" + m for m in _VNI_TONE),
    "ê": tuple("e" + m for m in _VNI_CIRCUMFLEX),
    "i": _VNI_I,
    "o": tuple("o" + m for m in _VNI_TONE),
    "ô": tuple("o" + m for m in _VNI_CIRCUMFLEX),
    "ơ": tuple("ô" + m for m in _VNI_TONE),
    "u": tuple("u" + m for m in _VNI_TONE),
    "ư": tuple("ö" + m for m in _VNI_TONE),
    "y": (*("y" + m for m in _VNI_TONE[:5]), "î"),  # ỵ is the single byte î
}
_VNI_D = {"đ": "ñ", "Đ": "Ñ"}

#: The five Windows-1252 holes, shown as C1 controls (MySQL latin1, WHATWG windows-1252).
_CP1252_HOLES = frozenset({0x81, 0x8D, 0x8F, 0x90, 0x9D})


def as_stored(raw: bytes) -> str:
    """Legacy bytes as a database that took them for Windows-1252 (MySQL `latin1`) shows them."""
    return "".join(chr(b) if b < 0x80 or b in _CP1252_HOLES else bytes([b]).decode("cp1252") for b in raw)


def _letter(base: str, tone: int, upper: bool) -> str:
    letter = unicodedata.normalize("NFC", base + _TONES[tone])
    return letter.upper() if upper else letter


def _build_tcvn3() -> dict[str, bytes]:
    table: dict[str, bytes] = {}
    for upper, codes in ((False, _TCVN3_LOWER), (True, _TCVN3_UPPER)):
        for base, row in codes.items():
            for tone, byte in enumerate(row):
                if byte:
                    table[_letter(base, tone, upper)] = bytes([byte])
    table.update({k: bytes([v]) for k, v in _TCVN3_D.items()})
    return table


def _build_vni() -> dict[str, bytes]:
    table: dict[str, bytes] = {}
    for base, row in _VNI_LOWER.items():
        for tone, text in enumerate(row):
            if tone == 0 and base in "aeiouy":
                continue  # plain ASCII vowels stay as they are
            for upper in (False, True):
                table[_letter(base, tone, upper)] = (text.upper() if upper else text).encode("cp1252")
    table.update({k: v.encode("cp1252") for k, v in _VNI_D.items()})
    return table


#: Unicode letter -> raw legacy bytes, for the 134 precomposed Vietnamese letters (67 lower, 67 upper).
TCVN3_BYTES: dict[str, bytes] = _build_tcvn3()
VNI_BYTES: dict[str, bytes] = _build_vni()

#: Unicode letter -> the legacy bytes as a modern database shows them (see `as_stored`).
TCVN3_TABLE: dict[str, str] = {k: as_stored(v) for k, v in TCVN3_BYTES.items()}
VNI_TABLE: dict[str, str] = {k: as_stored(v) for k, v in VNI_BYTES.items()}

#: ASCII control characters that TCVN 5712 VN1 reuses for capitals: input holding them would be ambiguous.
_TCVN3_RESERVED = frozenset(v for v in TCVN3_TABLE.values() if v < " ")


def _encode(text: str, table: dict[str, str], name: str, reserved: frozenset[str] = frozenset()) -> str:
    out: list[str] = []
    for position, char in enumerate(unicodedata.normalize("NFC", text)):
        legacy = table.get(char)
        if legacy is not None:
            out.append(legacy)
        elif char < "\x80" and char not in reserved:
            out.append(char)
        else:
            raise ValueError(f"{name} cannot encode {char!r} (U+{ord(char):04X}) at position {position} of {text!r}")
    return "".join(out)


def encode_tcvn3(text: str) -> str:
    """Text as a TCVN3 (ABC) database shows it in a Latin-1/Windows-1252 column ("Hà Nội" -> "Hµ Néi").

    NFD input is composed first. Characters outside ASCII and the Vietnamese letters raise ValueError.
    """
    return _encode(text, TCVN3_TABLE, "TCVN3", _TCVN3_RESERVED)


def encode_vni(text: str) -> str:
    """Text as a VNI Windows database shows it in a Latin-1/Windows-1252 column ("Hà Nội" -> "Haø Noäi")."""
    return _encode(text, VNI_TABLE, "VNI")
