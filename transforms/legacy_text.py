"""Legacy Vietnamese text: detect and decode TCVN3 (ABC) and VNI strings stored before Unicode.

Decision 72/2002/QĐ-TTg made Unicode mandatory from 2003 but let stored databases convert gradually
(DOMAIN.md §7), so sector databases still hold names typed in the 8-bit TCVN3 (".VnTime" fonts) and
VNI ("VNI-Times") encodings. Read back through a cp1252 or latin-1 column, those bytes become mojibake:
"Bát Xát" typed in TCVN3 reads "B¸t X¸t", "Nguyễn" typed in VNI reads "Nguyeãn".

Tables are built here from the standards, not from the simulator (``units/`` must not be imported):

- TCVN3: TCVN 5712:1993 byte -> Unicode as implemented by GNU libiconv ``lib/tcvn.h`` (the full VN1
  table). TCVN3 proper (VSCII-3, "ABC") is its subset of 67 lowercase letters, the 7 capitals
  Ă Â Ê Ô Ơ Ư Đ and NBSP; toned capitals were drawn by all-capital fonts (.VnTimeH) from the
  lowercase codes (en.wikipedia.org/wiki/VSCII). VN1 puts the other toned capitals on C1 codes and
  12 of them on C0 control codes (0x01 Ú ... 0x17 Ỵ); those control codes are decoded only when the
  whole value reads well as TCVN3, and are damage anywhere else.
- VNI Windows: a base letter followed by one mark byte, with single bytes for đ, ơ, ư, ỵ and the toned
  i (lamdao/xvnkb ``vni.h``; duydev/vietnamese-conversion ``src/charsets.ts``).

Detection cannot be certain ("Hoàng" is valid Unicode and also valid VNI for "Hồng"), so each
reading is scored by the share of its accented words that are well-formed Vietnamese syllables
(``transforms.syllables``). A legacy reading must explain every character and beat the Unicode
reading: on a tie the value is left as it is, so legacy text that also reads as good Unicode
("Khóc" for TCVN3 "Khúc") stays undecoded. Ties between TCVN3 and VNI go to the reading with more
common syllables, then to the encoding most values of the column use in the batch, else fail.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from typing import Literal

import pyarrow as pa

from transforms.syllables import COMMON, TONES, is_syllable, split_tone

log = logging.getLogger(__name__)

Encoding = Literal["unicode", "tcvn3", "vni", "unknown"]
Legacy = Literal["tcvn3", "vni"]
LEGACY_ENCODINGS: tuple[Legacy, ...] = ("tcvn3", "vni")

# TCVN 5712:1993 (VN1), bytes 0x80-0xFF, from libiconv lib/tcvn.h.
_TCVN_HIGH = (
    "ÀẢÃÁẠẶẬÈẺẼÉẸỆÌỈĨ"  # 0x80: toned capitals on C1 codes (VN1 only)
    "ÍỊÒỎÕÓỌỘỜỞỠỚỢÙỦŨ"  # 0x90
    "\u00a0ĂÂÊÔƠƯĐăâêôơưđẰ"  # 0xA0: TCVN3 capitals and lowercase letters; ư is 0xAD, the soft hyphen
    "\u0300\u0309\u0303\u0301\u0323àảãáạẲằẳẵắẴ"  # 0xB0: combining tone marks (VN2), then letters
    "ẮẦẨẪẤỀặầẩẫấậèỂẻẽ"  # 0xC0
    "éẹềểễếệìỉỄẾỒĩíịò"  # 0xD0
    "Ổỏõóọồổỗốộờởỡớợù"  # 0xE0
    "ỖủũúụừửữứựỳỷỹýỵỐ"  # 0xF0
)


def _read_as() -> dict[str, int]:
    """Each character a legacy byte 0x80-0xFF becomes when read as latin-1 or as cp1252."""
    chars = {chr(b): b for b in range(0x80, 0x100)}
    for b in range(0x80, 0xA0):
        with contextlib.suppress(UnicodeDecodeError):  # 0x81, 0x8D, 0x8F, 0x90, 0x9D: undefined in cp1252
            chars[bytes([b]).decode("cp1252")] = b
    return chars


#: TCVN 5712:1993 (VN1) capitals on C0 control codes (libiconv tcvn_2uni_1).
_TCVN_C0 = {"\x01": "Ú", "\x02": "Ụ", "\x04": "Ừ", "\x05": "Ử", "\x06": "Ữ", "\x11": "Ứ", "\x12": "Ự"} | {
    "\x13": "Ỳ",
    "\x14": "Ỷ",
    "\x15": "Ỹ",
    "\x16": "Ý",
    "\x17": "Ỵ",
}
_LEGACY_CHARS: dict[str, int] = _read_as()
_TCVN3_DECODE: dict[str, str] = {ch: _TCVN_HIGH[b - 0x80] for ch, b in _LEGACY_CHARS.items()} | _TCVN_C0


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def _tcvn3_table() -> dict[str, str]:
    """Unicode letter -> TCVN3 as read through cp1252, for the 134 precomposed Vietnamese letters.

    Letters with a code from 0xA0 up are written with it; the other capitals as base letter plus
    combining tone mark (TCVN 5712 VN2), since their VN1 codes are control codes.
    """
    codes = {u: chr(b + 0x80) for b, u in enumerate(_TCVN_HIGH) if b >= 0x20}  # not the C1 positions
    table: dict[str, str] = {}
    for letter in VIETNAMESE_LETTERS:
        if letter in codes:
            table[letter] = codes[letter]
        else:
            base, tone = split_tone(letter)
            table[letter] = (base if base.isascii() else codes[base]) + codes[tone]
    return table


def _vni_table() -> dict[str, str]:
    """Unicode letter -> VNI Windows as read through cp1252, for the 134 precomposed letters."""
    low: dict[str, str] = {"đ": "ñ", "ơ": "ô", "ư": "ö"}
    for base, legacy in (("a", "a"), ("e", "e"), ("o", "o"), ("u", "u"), ("y", "y"), ("ơ", "ô"), ("ư", "ö")):
        for tone, mark in zip(TONES, "ùøûõï", strict=True):
            low[_nfc(base + tone)] = legacy + mark
    low["ỵ"] = "î"  # y with dot below is one byte in VNI
    for base in "aeo":  # circumflex: â ê ô
        low[_nfc(base + "\u0302")] = base + "â"
        for tone, mark in zip(TONES, "áàåãä", strict=True):
            low[_nfc(base + "\u0302" + tone)] = base + mark
    low["ă"] = "aê"
    for tone, mark in zip(TONES, "éèúüë", strict=True):
        low[_nfc("a\u0306" + tone)] = "a" + mark
    for tone, mark in zip(TONES, "íìæóò", strict=True):
        low[_nfc("i" + tone)] = mark
    return low | {u.upper(): v.upper() for u, v in low.items()}


_VOWELS = ("a", "ă", "â", "e", "ê", "i", "o", "ô", "ơ", "u", "ư", "y")
_LOWER = sorted({_nfc(v + t) for v in _VOWELS for t in ("", *TONES)} - set("aeiouy") | {"đ"})
#: The 134 precomposed letters of Vietnamese beyond ASCII (67 lowercase, 67 capitals).
VIETNAMESE_LETTERS: tuple[str, ...] = (*_LOWER, *(c.upper() for c in _LOWER))
TCVN3_ENCODE: dict[str, str] = _tcvn3_table()
VNI_ENCODE: dict[str, str] = _vni_table()
_VNI_DECODE: dict[str, str] = (
    {v: u for u, v in VNI_ENCODE.items()}
    | {v[0] + v[1:].upper(): u for u, v in VNI_ENCODE.items() if len(v) == 2 and v[0].islower()}  # "aÙ"
    | {v[0].upper() + v[1:]: u.upper() for u, v in VNI_ENCODE.items() if len(v) == 2 and v[0].islower()}
    | {"yï": "ỵ", "YÏ": "Ỵ", "Yï": "Ỵ"}
)


def encode_legacy(text: str, encoding: Legacy) -> str:
    """``text`` as it reads after being stored in a legacy encoding and read back as cp1252 (for tests)."""
    table = TCVN3_ENCODE if encoding == "tcvn3" else VNI_ENCODE
    return "".join(table.get(ch, ch) for ch in _nfc(text))


# -- decoding -------------------------------------------------------------------------------------

_TONE_BEARERS = frozenset("aăâeêioôơuưyAĂÂEÊIOÔƠUƯY")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffd]")  # C0 controls (not tab/newline), DEL, U+FFFD
_BAD = re.compile(r"[\x00\x03\x07\x08\x0b\x0c\x0e-\x10\x18-\x1f\x7f\ufffd]")  # ... save VN1's capitals
_NOT_UNICODE = re.compile(r"[\x01\x02\x04-\x06\x11-\x17\x80-\x9f]")  # VN1's C0 capitals, C1 controls


def _upper_split_capitals(text: str) -> str:
    """'A' + 'á' -> 'Á': some converters write a toned capital as its base capital and the lowercase letter."""
    out: list[str] = []
    for ch in text:
        if out and out[-1].isupper() and ch.islower():
            base, tone = split_tone(ch)
            if tone and base.upper() == out[-1]:
                out[-1] = ch.upper()
                continue
        out.append(ch)
    return "".join(out)


def _typed_in_capitals(text: str) -> bool:
    """No ASCII lowercase and a word of two ASCII capitals or more: likely typed with a .VnTimeH font."""
    return not any(c.islower() for c in text if c.isascii()) and any(
        sum(c.isascii() and c.isupper() for c in word) >= 2 for word in text.split()
    )


def _decode_tcvn3(text: str, *, guess_case: bool = True) -> str | None:
    """TCVN3 reading of ``text``, or None when a character has no TCVN3 meaning."""
    chars: list[str] = []
    for ch in text:
        if ch.isascii() and ch not in _TCVN_C0:
            chars.append(ch)
        elif ch not in _TCVN3_DECODE:
            return None
        elif unicodedata.combining(_TCVN3_DECODE[ch]) and not (chars and chars[-1] in _TONE_BEARERS):
            chars.append(ch)  # a tone mark only follows a vowel: after anything else it is the symbol (m², 25°C)
        else:
            chars.append(_TCVN3_DECODE[ch])
    out = _upper_split_capitals(_nfc("".join(chars)))
    if any(unicodedata.combining(ch) for ch in out):
        return None  # a tone mark that does not sit on a vowel
    if guess_case and _typed_in_capitals(text):
        out = out.upper()  # an all-capital font drew the lowercase codes as capitals
    return out


def _decode_vni(text: str) -> str | None:
    """VNI reading of ``text``, or None when a character has no VNI meaning."""
    out: list[str] = []
    i = 0
    while i < len(text):
        pair = text[i : i + 2]
        if len(pair) == 2 and pair in _VNI_DECODE:
            out.append(_VNI_DECODE[pair])
            i += 2
            continue
        ch = text[i]
        if ch in _VNI_DECODE:
            out.append(_VNI_DECODE[ch])
        elif (ch.isascii() and not _CONTROL.match(ch)) or ch in _VNI_UNUSED:
            out.append(ch)
        else:
            return None
        i += 1
    return "".join(out)


# -- scoring --------------------------------------------------------------------------------------

_SEPARATORS = re.compile(r"[\s\d!-/:-@\[-`{-~\u00a0]+")
#: cp1252 punctuation, which is also where VN1 capitals show (0x94 Õ reads '”', 0x96 Ọ reads '–').
_TYPOGRAPHIC = "\u2018\u2019\u201c\u201d\u2022\u2013\u2014\u2026"
_VNI_UNUSED = "\u00a0" + _TYPOGRAPHIC + "«»°±²³·"  # symbols VNI leaves alone
_UNIT = re.compile(r"[a-z]{0,2}[²³]|°[CF]?|±")  # m², km³, °C: symbols that legitimately touch letters
_SYMBOLS = frozenset({chr(c) for c in range(0xA1, 0xC0) if not chr(c).isalpha()} | set("×÷\xad‚„†‡ˆ‰‹›˜™€"))


def _separate_typographic(text: str) -> str:
    """Blank out the cp1252 punctuation that separates words, keep the rest inside its word.

    VN1 capitals read as this punctuation ('ĐẶNG THỊ' shows '§…NG TH‘'), so a mark counts as a
    separator only where punctuation sits: an opening quote not after a letter, a closing quote not
    before one (curly double quotes only when they pair up), a dash or ellipsis away from letters.
    """
    balanced = text.count("\u201c") == text.count("\u201d")
    chars = list(text)
    for i, ch in enumerate(chars):
        if ch not in _TYPOGRAPHIC:
            continue
        before = i > 0 and not text[i - 1].isspace()
        after = i + 1 < len(text) and not text[i + 1].isspace()
        if ch in "\u2018\u201c":  # opening quotes
            separate = not (i > 0 and text[i - 1].isalpha()) and (balanced or ch == "\u2018")
        elif ch in "\u2019\u201d":  # closing quotes and the apostrophe
            separate = not (i + 1 < len(text) and text[i + 1].isalpha()) and (balanced or ch == "\u2019")
        else:
            separate = not before and not after
        if separate:
            chars[i] = " "
    return "".join(chars)


def _words(text: str) -> list[str] | None:
    """The accented words of ``text``; None when a symbol is glued inside a word ('B¸t'), a sign of mojibake."""
    tokens = (w.lstrip("«").rstrip("»") for w in _SEPARATORS.split(_separate_typographic(text)))
    words = [w for w in tokens if not w.isascii() and any(c.isalpha() for c in w) and not _UNIT.fullmatch(w)]
    return None if any(ch in _SYMBOLS for w in words for ch in w) else words


def _share(text: str) -> float:
    """Share of the accented words of ``text`` that are well-formed syllables; -1 for mojibake."""
    words = _words(text)
    if words is None:
        return -1.0
    return sum(_cased(w) and is_syllable(w) for w in words) / len(words) if words else 1.0


def _cased(word: str) -> bool:
    """Lowercase, Capitalised or ALL CAPS: mojibake often puts a capital inside a word ('GiÕng')."""
    return word.islower() or word.isupper() or (word[0].isupper() and (len(word) == 1 or word[1:].islower()))


@functools.lru_cache(maxsize=65536)
def _classify(text: str, encodings: tuple[Legacy, ...] = LEGACY_ENCODINGS) -> tuple[str, dict[str, str]]:
    """Status of ``text`` ('unicode', 'tcvn3', 'vni', 'ambiguous' or 'unknown') and its readings.

    The readings map each winning encoding to its NFC text: one entry, or several when the status is
    'ambiguous' (equally plausible TCVN3 and VNI readings that differ). Names repeat, so this is cached.
    """
    if _BAD.search(text):
        return "unknown", {}
    not_unicode = _NOT_UNICODE.search(text) is not None
    if text.isascii() and not not_unicode:
        return "unicode", {"unicode": text}
    if not all(ch.isascii() or ch in _LEGACY_CHARS for ch in text):  # a character no legacy byte reads as
        clean = not not_unicode and _words(text) is not None
        return ("unicode", {"unicode": text}) if clean else ("unknown", {})
    unicode_share = -1.0 if not_unicode else _share(text)
    fallback = ("unicode", {"unicode": text}) if unicode_share >= 0 else ("unknown", {})
    readings: dict[str, tuple[float, str]] = {}
    for name in encodings:
        decoded = (_decode_tcvn3 if name == "tcvn3" else _decode_vni)(text)
        if decoded is not None:
            readings[name] = (_share(_nfc(decoded)), _nfc(decoded))
    best = max((score for score, _ in readings.values()), default=-1.0)
    if best < 0.5 or best <= unicode_share:
        return fallback
    winners = {name: out for name, (score, out) in readings.items() if score == best}
    if len(winners) > 1:
        winners = _break_tie(text, winners)
    if len(set(winners.values())) > 1:
        return "ambiguous", winners
    return next(iter(winners)), winners


def _break_tie(text: str, winners: dict[str, str]) -> dict[str, str]:
    """Narrow equally well-formed TCVN3 and VNI readings down, by three signs in turn."""
    raw = _decode_tcvn3(text, guess_case=False)
    if _typed_in_capitals(text) and raw is not None and any(c.islower() for c in raw):
        winners = {k: v for k, v in winners.items() if k != "tcvn3"}  # TCVN3 needed the capital-font guess
    common = {k: sum(w.lower() in COMMON for w in _words(v) or []) for k, v in winners.items()}
    winners = {k: v for k, v in winners.items() if common[k] == max(common.values())}
    # A VNI pair read as TCVN3 gives two vowels where the spelling has one: prefer the shorter reading.
    shortest = min(len(v) for v in winners.values())
    return {k: v for k, v in winners.items() if len(v) == shortest}


def detect_legacy(text: str, *, encodings: Sequence[Legacy] = LEGACY_ENCODINGS) -> Encoding:
    """Which encoding ``text`` was written in: 'unicode', 'tcvn3', 'vni' or 'unknown'.

    'unknown' covers damaged text (control characters, U+FFFD, symbols inside words that no legacy
    reading explains) and text whose TCVN3 and VNI readings are equally plausible.
    """
    status = _classify(text, tuple(encodings))[0]
    return "unknown" if status == "ambiguous" else status  # type: ignore[return-value]


def decode_legacy(text: str, encoding: Legacy | None = None) -> str:
    """``text`` as NFC Unicode, decoded from ``encoding`` or from the detected encoding.

    Raises:
        ValueError: the text is neither Unicode nor decodable, or its encoding cannot be told.
    """
    if encoding is not None:
        decoded = None if _BAD.search(text) else (_decode_tcvn3 if encoding == "tcvn3" else _decode_vni)(text)
        if decoded is None:
            raise ValueError(f"cannot decode {text!r} as {encoding}")
        return _nfc(decoded)
    status, readings = _classify(text)
    if status in ("unknown", "ambiguous"):
        raise ValueError(f"cannot decode {text!r}: {_why(status, readings)}")
    return _nfc(readings[status])


def _why(status: str, readings: dict[str, str]) -> str:
    if status == "ambiguous":
        shown = " or ".join(f"{name.upper()} {out!r}" for name, out in readings.items())
        return f"it reads equally well as {shown}; name the source's encoding in the 'encodings' argument"
    return "neither valid Unicode nor TCVN3/VNI text"


def decode_legacy_text(
    batch: pa.RecordBatch, *, columns: Sequence[str], encodings: Sequence[Legacy] = LEGACY_ENCODINGS
) -> pa.RecordBatch:
    """Decode the values detected as TCVN3 or VNI in the named text columns; leave Unicode values as they are.

    Decoded values are NFC; Unicode values are not touched (``nfc_text`` normalises them).

    A value that reads equally well in both legacy encodings takes the encoding of most decoded
    values of its column in the batch; ``encodings`` narrows the candidates for a source known to
    use one of them.

    Raises:
        KeyError: a named column is missing.
        TypeError: a named column is not text.
        ValueError: a value is neither Unicode nor decodable, naming column, row (within the batch) and value.
    """
    missing = [n for n in columns if n not in batch.schema.names]
    if missing:
        raise KeyError(f"decode_legacy_text: column(s) {missing} not in the data")
    unknown = [e for e in encodings if e not in LEGACY_ENCODINGS]
    if unknown:
        raise ValueError(f"decode_legacy_text: unknown encoding(s) {unknown}; known: {list(LEGACY_ENCODINGS)}")
    arrays = []
    for i, field in enumerate(batch.schema):
        col = batch.column(i)
        if field.name in columns:
            if not (pa.types.is_string(field.type) or pa.types.is_large_string(field.type)):
                raise TypeError(f"decode_legacy_text: column {field.name!r} has type {field.type}, expected text")
            col = _decode_column(col, field.name, tuple(encodings))
        arrays.append(col)
    return pa.RecordBatch.from_arrays(arrays, schema=batch.schema)


def _decode_column(col: pa.Array, name: str, encodings: tuple[Legacy, ...]) -> pa.Array:
    values = col.to_pylist()
    found = [None if v is None else _classify(v, encodings) for v in values]
    counts = Counter(f[0] for f in found if f is not None and f[0] in LEGACY_ENCODINGS)
    dominant = counts.most_common(1)[0][0] if counts else None
    out: list[str | None] = []
    for row, (value, result) in enumerate(zip(values, found, strict=True)):
        if result is None:
            out.append(None)
            continue
        status, readings = result
        if status == "ambiguous" and dominant in readings:
            status = dominant
        if status in ("unknown", "ambiguous"):
            raise ValueError(
                f"decode_legacy_text: column {name!r}, row {row}: cannot decode {value!r}: {_why(status, readings)}"
            )
        out.append(readings[status])
    if not counts and all(f is None or f[0] == "unicode" for f in found):
        return col
    log.debug("decode_legacy_text: column %s: legacy values decoded: %s", name, dict(counts))
    return pa.array(out, type=col.type)
