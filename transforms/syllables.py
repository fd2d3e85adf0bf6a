"""Vietnamese syllable shape: the test that tells a decoded name from mojibake.

A Vietnamese syllable is an onset, a vowel cluster from a closed list, an optional final consonant
that fits the cluster, and at most one tone mark on the vowel that spelling rules give it. Mojibake
breaks these rules almost always ("Nguyeãn" has the cluster "uyea"), so the share of well-formed
words scores each candidate reading of a legacy string (see ``transforms.legacy_text``).
"""

from __future__ import annotations

import re
import unicodedata

TONES = "\u0301\u0300\u0309\u0303\u0323"  # sắc, huyền, hỏi, ngã, nặng

_COMMON_WORDS = """
    nguyễn trần lê phạm hoàng huỳnh phan vũ võ đặng bùi đỗ hồ ngô dương lý đinh trịnh mai tô hà tạ lương
    quách cao lâm triệu thái đoàn vương trương lưu châu kiều khúc đàm chu lục hứa văn thị đức minh ngọc
    thanh hữu quang xuân thu hồng bảo gia kim anh tuấn thế công đình như phương diệu khánh an bình cường
    dũng giang hải hạnh hiếu hoà hòa hùng hương huyền khoa lan linh long nam nga nhung oanh phúc quân
    quyên sơn tâm thảo thắng thủy thuỷ trang trung tú tuyết uyên việt vy yến ánh hoa hiền hằng hạ hân huy
    hưng khang khôi kiên lộc luân mạnh my nhật nhi phong phú quý quốc sang sinh tài tân thành thiện
    thịnh thông thư tiến toàn trí trọng tùng tường vân vinh vĩnh yên ngân nguyệt đạt đông đào điệp tỉnh
    phố huyện quận xã phường trấn thôn bản ấp khu tổ dân ủy uỷ ban nhân sở tài nguyên môi trường nông
    nghiệp phát triển ty cổ phần trách nhiệm hạn nước sạch cấp thoát sông suối giếng khoan trạm bơm nhà
    máy số bắc tây thượng đồng núi cầu chợ mới lào cai bái ninh phòng đà nẵng huế cần thơ nội tĩnh nghệ
    hoá hóa
"""
#: Frequent syllables of names, places and agencies: a tie-breaker between two well-formed readings.
COMMON: frozenset[str] = frozenset(_COMMON_WORDS.split())


def split_tone(letter: str) -> tuple[str, str]:
    """A letter's toneless base (NFC) and its combining tone mark ('' if none): 'ặ' -> ('ă', U+0323)."""
    nfd = unicodedata.normalize("NFD", letter)
    tones = [m for m in nfd if m in TONES]
    return unicodedata.normalize("NFC", "".join(m for m in nfd if m not in TONES)), "".join(tones)


_SYLLABLE = re.compile(  # onsets of Vietnamese plus Krông, Pleiku, Drây of the highland place names
    r"(ngh|ng|nh|ch|gh|kh|ph|th|tr|[bcdfgkpt][lr]|[bcdđghklmnpqrstvxfjwz]|)([aăâeêioôơuưy]+)(ch|ng|nh|[cmnptk])?"
)
_CLUSTERS = frozenset(
    (
        *("a", "ă", "â", "e", "ê", "i", "o", "ô", "ơ", "u", "ư", "y"),
        *("ai", "ao", "au", "ay", "âu", "ây", "eo", "êu", "ia", "iê", "iu", "oa", "oă", "oe", "oi", "ôi", "ơi"),
        *("oo", "ua", "uâ", "uê", "ui", "uô", "uơ", "uy", "ưa", "ưi", "ươ", "ưu", "yê"),
        *("iêu", "oai", "oao", "oay", "oeo", "uây", "uôi", "uya", "uyê", "uyu", "ươi", "ươu", "yêu"),
    )
)
#: Clusters that may take a final consonant.
_CLOSED = frozenset(
    (
        *("a", "ă", "â", "e", "ê", "i", "o", "ô", "ơ", "u", "ư"),
        *("iê", "yê", "oa", "oă", "oe", "oo", "uâ", "uê", "uô", "uơ", "uy", "ươ", "uyê"),
    )
)


def _tone_ok(cluster: str, at: int, coda: str) -> bool:
    """Whether the tone sits where Vietnamese spelling puts it (old and new styles both accepted)."""
    marked = [i for i, c in enumerate(cluster) if c in "ăâêôơư"]
    if marked:
        return at == marked[-1]
    if len(cluster) == 1:
        return at == 0
    if coda:
        return at == len(cluster) - 1
    if len(cluster) == 2:
        return at == 0 or cluster in ("oa", "oe", "uy")
    return at == 1


def is_syllable(word: str) -> bool:
    """Whether ``word`` is a well-formed Vietnamese syllable: onset, vowel cluster, coda, one placed tone."""
    base: list[str] = []
    tone, at = "", -1
    for ch in unicodedata.normalize("NFC", word.lower()):
        letter, mark = split_tone(ch)
        if mark:
            if tone or len(mark) > 1:
                return False
            tone, at = mark, len(base)
        base.append(letter)
    m = _SYLLABLE.fullmatch("".join(base))
    if not m:
        return False
    onset, cluster, coda = m.group(1), m.group(2), m.group(3) or ""
    if tone and coda in ("c", "ch", "p", "t", "k") and tone not in "\u0301\u0323":
        return False  # stop codas take only sắc or nặng
    parses = [(onset, cluster)]
    if len(cluster) > 1 and (onset[-1:], cluster[0]) in (("g", "i"), ("q", "u")):
        parses.append((onset + cluster[0], cluster[1:]))  # gi- and qu- onsets
    return any(c in _CLUSTERS and _coda_ok(c, coda) and (not tone or _tone_ok(c, at - len(o), coda)) for o, c in parses)


def _coda_ok(cluster: str, coda: str) -> bool:
    """Whether the final consonant may follow the cluster ('anh', 'ích' but not 'onh', 'ing')."""
    if not coda:
        return True
    if cluster not in _CLOSED:
        return False
    if coda in ("ch", "nh"):
        return cluster in ("a", "ê", "i", "y", "oa", "uê", "uy")
    if coda in ("ng", "c"):
        return cluster not in ("i", "ê", "y", "uy", "uê")
    return True
