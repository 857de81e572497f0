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


def normalize_text(text: str, *, full_width_to_half_width: bool = True):
    """Returns (normalized text, Counter of what changed). Line breaks are kept (they separate
    lines/paragraphs for sentence splitting); runs of other spaces become one space."""
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
    if full_width_to_half_width:
        converted = text.translate(_HALF_WIDTH)
        if converted != text:
            changes["full_width_to_half_width"] += sum(a != b for a, b in zip(text, converted))
            text = converted
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = substitute(_SPACES, " ", text, "spaces_collapsed")
    if unicodedata.is_normalized("NFC", text) is False:
        text = unicodedata.normalize("NFC", text)
        changes["nfc_normalized"] += 1
    return text, changes
