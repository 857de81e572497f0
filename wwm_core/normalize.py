"""Text normalization that keeps what a BERT vocabulary needs, reporting what it changed."""
import collections
import html
import re
import unicodedata

# Zero-width and bidi control characters: invisible, and they split or glue tokens at random.
_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\u00ad]")
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200a\u202f\u205f]+")
_LINE_BREAK_TAG = re.compile(r"<br\s*/?>|</?p\s*>", re.IGNORECASE)
# A tag only if its attributes look like attributes, so "a<b 与 3 > 2" is left alone.
_HTML_TAG = re.compile(r"""</?[a-zA-Z][a-zA-Z0-9]{0,15}(\s+[a-zA-Z_:][-\w:.]*(\s*=\s*("[^"<>]*"|'[^'<>]*'|[^\s"'<>]+))?)*\s*/?>""")
_ENTITY = re.compile(r"&(#\d+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]{1,31});")
# Full-width letters and digits to ASCII, and the ideographic space to a space. Full-width
# punctuation (，！？：；（）) is left alone: it is the normal punctuation of Chinese text and has
# its own ids in Chinese BERT vocabularies.
_HALF_WIDTH = {code: code - 0xFEE0 for code in [*range(0xFF10, 0xFF1A), *range(0xFF21, 0xFF3B), *range(0xFF41, 0xFF5B)]}
_HALF_WIDTH[0x3000] = 0x20
_FULL_WIDTH = re.compile("[" + "".join(map(chr, _HALF_WIDTH)) + "]")


# Characters Google's bert-base-chinese vocabulary (every HFL model's) lacks, mapped to equivalents
# it has; opt-in (--vocab_equivalents), since HFL trained on the text as written, where these are
# [UNK]. Typographic quotes and dashes are the common ones in Chinese text (their share of tokens:
# docs/cleaning.md, "Vocabulary equivalents"); … becomes ⋯ (one token, as Chinese typesetting draws
# it) rather than NFKC's "...".
_MANUAL_EQUIVALENTS = {
    "“": '"', "”": '"', "‟": '"', "‘": "'", "’": "'", "‛": "'", "‚": "'", "`": "'", "´": "'",
    "—": "-", "–": "-", "―": "-", "‐": "-", "‑": "-", "‒": "-", "…": "⋯", "¯": "-", "ˉ": "-", "¦": "|",
}
# Characters the vocabulary lacks whose Unicode compatibility form (NFKC) it has: letterlike
# symbols, Roman numerals, fractions, enclosed and parenthesized numbers and letters, vertical and
# small punctuation forms, half-width katakana. Generated against the bundled vocabulary
# (tests/test_cleaning_real.py checks both halves of that claim for every character).
_NFKC_EQUIVALENTS = (
    "ª½¾ĲĳĿŀſǄǅǆǇǈǉǊǋǌǱǲǳ․‴‼⁇⁈⁉⁗⁰⁴⁵⁶⁷⁸⁹⁻⁼⁽⁾₀₅₆₇₈₉₊₋₌₍₎ₐₑₒₓₔₕₖₗₘₙₚₛₜ₨℀℁ℂ℅℆℉ℊℋℌℍℎℐℑℒℓℕℙℚℛℜℝ℠℡ℤℨℬℭℯℰ"
    "ℱℳℴℹ℻ℼℽℾℿⅅⅆⅇⅈⅉ⅐⅑⅒⅓⅔⅕⅖⅗⅘⅙⅚⅛⅜⅝⅞⅟ⅥⅦⅧⅨⅩⅪⅫⅬⅭⅮⅯⅵⅶⅷⅸⅹⅺⅻⅼⅽⅾⅿ↉⑪⑫⑬⑭⑮⑯⑰⑱⑲⑳⑹⑺⑻⑼⑽⑾⑿⒀⒁⒂⒃⒄⒅⒆⒇⒌⒍⒎⒏⒐⒑⒒⒓"
    "⒔⒕⒖⒗⒘⒙⒚⒛⒜⒝⒞⒟⒠⒡⒢⒣⒤⒥⒦⒧⒨⒩⒪⒫⒬⒭⒮⒯⒰⒱⒲⒳⒴⒵ⒶⒷⒹⒻⒼⒽⒿⓀⓁⓂⓃⓄⓅⓆⓇⓈⓉⓊⓋⓌⓍⓎⓏⓐⓑⓓⓕⓖⓗⓙⓚⓛⓜⓝⓞⓟⓠⓡⓢⓣⓤⓥⓦ"
    "ⓧⓨⓩ⓪〸〺ゟヿ︐︑︒︓︔︕︖︗︘︙︳︴︵︷︸︹︺︻︼︽︾﹀﹃﹄﹇﹈﹎﹛﹜﹟﹠﹢﹤﹥﹦﹨﹩﹪﹫ｦｧｨｩｪｫｬｭｮｱｳｴｵｶｷｹｺｻｾｿﾀﾁﾂﾃﾅﾆﾇﾈﾊﾋﾍﾎﾏﾐﾑﾒ"
    "ﾓﾔﾕﾖﾘﾚﾛﾜﾡﾢﾤﾧﾩﾱﾲﾳﾵﾷﾸﾺﾻﾼﾽﾾￂￃￄￆￇￊￋￌￍￏￒￓￔￗￚￛￜ￡￨￩￪￫￬￭￮")
VOCAB_EQUIVALENTS = {**{c: unicodedata.normalize("NFKC", c) for c in _NFKC_EQUIVALENTS}, **_MANUAL_EQUIVALENTS}
_VOCAB_EQUIVALENT = re.compile("[" + re.escape("".join(VOCAB_EQUIVALENTS)) + "]")


def map_vocab_equivalents(text: str):
    """(text with VOCAB_EQUIVALENTS applied, how many characters were mapped)."""
    return _VOCAB_EQUIVALENT.subn(lambda match: VOCAB_EQUIVALENTS[match.group()], text)


def normalize_text(text: str, *, full_width_to_half_width: bool = True, vocab_equivalents: bool = False):
    """Returns (normalized text, Counter of what changed). Line breaks are kept (they separate
    lines/paragraphs for sentence splitting); runs of other spaces become one space.
    ``vocab_equivalents``: map characters the vocabulary lacks (VOCAB_EQUIVALENTS)."""
    changes = collections.Counter()

    def substitute(pattern, replacement, value, name):
        value, count = pattern.subn(replacement, value)
        if count:
            changes[name] += count
        return value

    text = substitute(_LINE_BREAK_TAG, "\n", text, "html_tags_removed")  # web text: <br> ends a line
    text = substitute(_HTML_TAG, "", text, "html_tags_removed")
    text = substitute(_ENTITY, lambda m: html.unescape(m.group(0)), text, "html_entities_decoded")
    text = substitute(_INVISIBLE, "", text, "invisible_chars_removed")
    text = substitute(_CONTROL, "", text, "control_chars_removed")
    # Searched first: str.translate looks up every character, and most documents have none of these.
    if full_width_to_half_width and _FULL_WIDTH.search(text):
        changes["full_width_to_half_width"] += len(_FULL_WIDTH.findall(text))
        text = text.translate(_HALF_WIDTH)
    if vocab_equivalents:
        text, mapped = map_vocab_equivalents(text)
        if mapped:
            changes["vocab_equivalents_mapped"] += mapped
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = substitute(_SPACES, " ", text, "spaces_collapsed")
    if unicodedata.is_normalized("NFC", text) is False:
        text = unicodedata.normalize("NFC", text)
        changes["nfc_normalized"] += 1
    return text, changes


_WHITESPACE = re.compile(r"\s+")
_TRUNCATION_MARK = re.compile(r"(\.{2,}|…+|⋯+|。{2,})$")


def repeats_lead(lead: str, body: str) -> bool:
    """Whether ``lead`` only repeats the start of ``body`` (news2016zh's ``desc`` is a cut-off copy
    of its ``content``): the same characters once whitespace is ignored, maybe cut short and
    marked so with "..." or "…"."""
    lead = _TRUNCATION_MARK.sub("", _WHITESPACE.sub("", lead))
    return bool(lead) and _WHITESPACE.sub("", body).startswith(lead)


def join_fields(values):
    """A JSON record's text fields as one text, one field a line, empty ones skipped and a field
    that only repeats the start of the next (``repeats_lead``) dropped. Returns (text, how many
    fields were dropped as repeated leads)."""
    values = [value for value in values if value.strip()]
    kept = [value for value, following in zip(values, values[1:] + [""]) if not (following and repeats_lead(value, following))]
    return "\n".join(kept), len(values) - len(kept)
