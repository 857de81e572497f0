"""MediaWiki XML dumps: safe page extraction, and wikitext to plain text.

Pages are cut out of the dump's bytes one ``<page>`` element at a time, wherever they are (a dump
written on one line too), and each is parsed on its own with defusedxml, so memory is bounded by
one page, and every ``<page>`` seen is one record: a page that is broken, unclosed, too large or
declares a DTD is one dead letter, and reading carries on with the next. A DTD or entity
declaration outside the pages (billion laughs, XXE) makes every page after it a dead letter
``unsafe_xml``: nothing is ever expanded. Multistream dumps (``*-multistream.xml.bz2`` with
``*-multistream-index.txt.bz2``) are read by byte ranges of whole bz2 streams, so many workers
share one dump; the index only plans the ranges, the streams themselves are found from their
headers.
"""
import collections
import dataclasses
import re

import defusedxml.ElementTree as SafeET
import mwparserfromhell

from wwm_core.text import Damage

MAX_PAGE_BYTES = 64 * 1024 * 1024


class UnsafeXmlError(ValueError):
    """The dump declares a DTD or entities, which real dumps never do: refused as an attack."""


class PageTooComplex(ValueError):
    """Wikitext whose parsing would cost more than the page budget (see ``check_parse_budget``)."""


@dataclasses.dataclass(frozen=True)
class Page:
    page_id: str
    title: str
    namespace: int
    is_redirect: bool
    wikitext: str


@dataclasses.dataclass(frozen=True)
class BrokenPage:
    where: str  # "byte N" of the decompressed stream read
    reason: str  # counter name: broken_xml_page, page_too_large, unsafe_xml, corrupt_compressed_data, ...
    detail: str
    raw: str


_DECLARATION = re.compile(rb"<!(DOCTYPE|ENTITY)", re.IGNORECASE)
_UNSAFE = ("the XML declares a DTD or entities (<!DOCTYPE/<!ENTITY); MediaWiki dumps never do, and expanding "
           "them is how billion-laughs and XXE attacks work: refused")


def header_declares_dtd(data: bytes) -> bool:
    """Whether the part of ``data`` before its first ``<page>`` declares a DTD or entities."""
    first = _PAGE_TAG.search(data)
    return _DECLARATION.search(data[:first.start()] if first else data) is not None


def parse_page(chunk: bytes) -> Page:
    """One ``<page>...</page>`` element. Raises on broken XML; entities are forbidden."""
    if _DECLARATION.search(chunk):
        raise UnsafeXmlError("a page declares a DTD or entities")
    element = SafeET.fromstring(chunk, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    revision = element.find("revision")
    text = revision.findtext("text") if revision is not None else None
    return Page(
        page_id=(element.findtext("id") or "").strip(),
        title=(element.findtext("title") or "").strip(),
        namespace=int((element.findtext("ns") or "0").strip()),
        is_redirect=element.find("redirect") is not None,
        wikitext=text or "",
    )


# "<page>" or "<page attr=...>", and "</page>"; "<pages>" and "<page_x>" are other elements.
_PAGE_TAG = re.compile(rb"<(/?)page(?=[\s>/])")
_DECLARATION_TAIL = 9  # len(b"<!DOCTYPE"): what a match may straddle between two chunks
_SCAN_TAIL = 16


@dataclasses.dataclass
class PageScan:
    """What ``page_elements`` saw besides the pages (read after it is exhausted)."""
    pages: int = 0  # every <page> start seen, whatever became of it
    declaration: bool = False  # a DTD or entity declaration outside the pages


def page_elements(chunks, *, scan: PageScan = None, unsafe: bool = False, max_page_bytes: int = MAX_PAGE_BYTES):
    """Cuts ``<page>`` elements out of a dump's byte chunks (and Damage markers).

    Yields (offset, page bytes) or a BrokenPage for every ``<page>`` start it sees, wherever it is:
    a page that a new ``<page>`` starts inside, or that the stream ends in, is ``broken_xml_page``;
    one over ``max_page_bytes`` is ``page_too_large`` (never held in memory); one a Damage falls in
    takes the Damage's reason. A Damage outside pages is a record of its own (pages may have been
    in it). A DTD or entity declaration outside the pages makes every later page ``unsafe_xml``
    (``unsafe=True``: the dump's header, read elsewhere, already had one)."""
    scan = scan if scan is not None else PageScan()
    buffer = bytearray()  # unscanned bytes; inside a page, the page so far (unless too large)
    base = 0  # stream offset of buffer[0]
    start = None  # stream offset of the open page's "<page", or None outside pages
    searched = 0  # how far into buffer the scan has looked
    dropped = 0  # bytes of an over-large page not kept

    def broken(reason, detail, raw=b""):
        return BrokenPage(f"byte {start}", reason, detail, bytes(raw[:200]).decode("utf-8", "backslashreplace"))

    for chunk in chunks:
        if isinstance(chunk, Damage):
            if start is not None:
                yield broken(chunk.reason, chunk.detail, buffer)
            else:
                yield BrokenPage(f"byte {base + len(buffer)}", chunk.reason, chunk.detail, "")
            base, buffer, start, searched, dropped = base + len(buffer), bytearray(), None, 0, 0
            continue
        buffer += chunk
        while True:
            if start is None:
                match = _PAGE_TAG.search(buffer, searched)
                while match and match.group(1):  # a stray "</page>" outside pages: nothing to close
                    match = _PAGE_TAG.search(buffer, match.end())
                outside = buffer[:match.start()] if match else buffer
                if not unsafe and _DECLARATION.search(outside):
                    unsafe = scan.declaration = True
                if not match:
                    keep = max(_SCAN_TAIL, _DECLARATION_TAIL)
                    base += max(0, len(buffer) - keep)
                    buffer = buffer[-keep:]
                    searched = 0
                    break
                base += match.start()
                buffer = buffer[match.start():]
                start, searched, dropped = base, len(b"<page"), 0
                scan.pages += 1
                continue
            match = _PAGE_TAG.search(buffer, searched)
            if not match:
                searched = max(searched, len(buffer) - _SCAN_TAIL)
                if len(buffer) + dropped > max_page_bytes:  # keep scanning for its end, not its bytes
                    dropped += len(buffer) - _SCAN_TAIL
                    base += len(buffer) - _SCAN_TAIL
                    buffer, searched = buffer[-_SCAN_TAIL:], 0
                break
            if not match.group(1):  # another <page> before this one closed
                yield broken("broken_xml_page", "a new <page> starts before this one's </page>", buffer)
                base += match.start()
                buffer = buffer[match.start():]
                start, searched, dropped = base, len(b"<page"), 0
                scan.pages += 1
                continue
            end = buffer.find(b">", match.end()) + 1
            if not end:  # "</page" at the chunk's end: wait for its ">"
                searched = match.start()
                break
            size = dropped + end
            if size > max_page_bytes:
                yield broken("page_too_large", f"{size} bytes (over {max_page_bytes})")
            elif unsafe:
                yield broken("unsafe_xml", _UNSAFE, buffer[:end])
            else:
                yield start, bytes(buffer[:end])
            base += end
            buffer, start, searched, dropped = buffer[end:], None, 0, 0
    if start is not None:
        yield broken("broken_xml_page", "the dump ends inside a page", buffer)


# ---------------------------------------------------------------- multistream dumps

def multistream_offsets(index_lines):
    """Sorted distinct byte offsets of the bz2 streams, from a multistream index
    ("offset:id:title" a line), or None when a line is not of that form: a garbage index is not
    trusted at all."""
    offsets = set()
    for line in index_lines:
        line = line.strip()
        if not line:
            continue
        head, colon, _ = line.partition(b":")
        if not colon or not head.isdigit() or len(head) > 18:
            return None
        offsets.add(int(head))
    return sorted(offsets)


# ---------------------------------------------------------------- wikitext to text

# Variants of the zh conversion markup that each OpenCC target prefers, best first.
VARIANT_PREFERENCE = {
    "zh-hans": ("zh-hans", "zh-cn", "zh-sg", "zh-my", "zh"),
    "zh-hant": ("zh-hant", "zh-tw", "zh-hk", "zh-mo", "zh"),
}
_VARIANT_NAMES = {"zh", "zh-hans", "zh-hant", "zh-cn", "zh-sg", "zh-my", "zh-tw", "zh-hk", "zh-mo"}
_FLAGS = re.compile(r"^\s*([A-Za-z;+\-]{1,6})\s*\|(.*)$", re.S)


def resolve_conversion_markup(text: str, *, variant: str = "zh-hans") -> str:
    """``-{zh-hans:计算机;zh-hant:電腦}-`` -> the preferred variant's text; ``-{text}-`` -> text;
    hidden rules (``-{H|...}-``) -> nothing."""
    preference = VARIANT_PREFERENCE[variant]

    def choose(body):
        flags = _FLAGS.match(body)
        if flags and not flags.group(1).lower().startswith("zh"):
            if "H" in flags.group(1) or "-" in flags.group(1):
                return ""
            body = flags.group(2)
        variants = {}
        for entry in body.split(";"):
            name, colon, value = entry.partition(":")
            if colon and name.strip() in _VARIANT_NAMES:
                variants[name.strip()] = value
        if not variants:
            return body
        for name in preference:
            if name in variants:
                return variants[name]
        return next(iter(variants.values()))

    return _replace_spans(text, "-{", "}-", choose)


def _replace_spans(text: str, opener: str, closer: str, replace) -> str:
    """What ``re.sub(opener + "(.*?)" + closer, ...)`` with re.S does, in linear time: the regex
    engine tries every opener against the rest of the text, which is quadratic on thousands of
    unclosed openers. Here, once an opener finds no closer, no later one can. ``replace`` gets the
    text between them and returns what stands for the whole span."""
    pieces, position = [], 0
    while True:
        start = text.find(opener, position)
        if start < 0:
            break
        end = text.find(closer, start + len(opener))
        if end < 0:
            break
        pieces.append(text[position:start])
        pieces.append(replace(text[start + len(opener):end]))
        position = end + len(closer)
    if not pieces:
        return text
    pieces.append(text[position:])
    return "".join(pieces)


_DROPPED_TAGS = {"ref", "references", "table", "gallery", "math", "chem", "ce", "score", "timeline", "imagemap",
                 "syntaxhighlight", "source", "pre", "code", "graph", "mapframe", "templatedata", "noinclude",
                 "includeonly", "hiero", "inputbox", "categorytree"}
_DROPPED_LINK_PREFIXES = {"file", "image", "media", "category", "文件", "檔案", "档案", "图像", "圖像", "分类", "分類",
                          "wikipedia", "wp", "help", "template", "portal", "user", "special", "talk"}
_LANGUAGE_PREFIX = re.compile(r"^[a-z]{2,3}(-[a-z]{2,8})*$")
_DISAMBIGUATION_TEMPLATES = {"disambig", "disambiguation", "dab", "dp", "消歧义", "消歧義", "disambig-cleanup"}
# Unbalanced markup the parser kept as text: spans removed in linear time (opener, closer), then
# patterns that cannot backtrack far.
_LEFTOVER_SPANS = (("{{", "}}"), ("{|", "|}"), ("<ref", "</ref>"))
_LEFTOVER = [re.compile(p) for p in (r"<ref[^>]{0,200}/>", r"<[^>]{1,200}>", r"\[\[|\]\]", r"\{\{|\}\}|\{\||\|\}",
                                     r"-\{|\}-", r"[（(][\s,，;；、]*[）)]")]  # brackets emptied by removed templates


def _is_dropped_link(title: str) -> bool:
    prefix, colon, _ = title.strip().lstrip(":").partition(":")
    if not colon:
        return False
    prefix = prefix.strip().lower()
    return prefix in _DROPPED_LINK_PREFIXES or bool(_LANGUAGE_PREFIX.match(prefix))


def _is_disambiguation_template(node) -> bool:
    return str(node.name).strip().lower() in _DISAMBIGUATION_TEMPLATES


def _doomed(node) -> bool:
    if isinstance(node, (mwparserfromhell.nodes.Template, mwparserfromhell.nodes.Comment)):
        return True
    if isinstance(node, mwparserfromhell.nodes.Tag):
        return str(node.tag).strip().lower() in _DROPPED_TAGS
    if isinstance(node, mwparserfromhell.nodes.Wikilink):
        return _is_dropped_link(str(node.title))
    return False


def _prune(code) -> None:
    """Drops unwanted nodes in one walk of the tree (Wikicode.remove searches the whole tree for
    every node it removes, which is quadratic on long articles)."""
    kept = []
    for node in code.nodes:
        if _doomed(node):
            continue
        for child in node.__children__():
            _prune(child)
        kept.append(node)
    code.nodes = kept


# The parse budget of one page. mwparserfromhell's tokenizer tries each construct it meets
# ("{{", "[[", "<ref>", "'''", ...) and, when the construct never closes, scans on until it fails and
# backtracks: about one scan of the rest of the page per unclosed construct, so a page of
# thousands of them takes minutes. Its C tokenizer cannot be interrupted from the worker thread it
# runs in (signals reach only the main thread), and a wall-clock limit would make the output
# depend on the machine's load, so the budget is a deterministic estimate of that work, computed
# in linear time before parsing: the characters after each construct that is never closed, summed.
# The limits are a few seconds of parsing, far above real pages (measured: docs/reliability.md,
# "The wikitext parse budget is deterministic").
MAX_WIKITEXT_CHARS = 4_000_000  # text without unclosed constructs
MAX_PARSE_COST = 50_000_000  # characters scanned by failing constructs
_PAIRS = {"{{": "}}", "[[": "]]", "{|": "|}", "<!--": "-->", "[": "]"}  # not "-{": the parser has no such construct
_CLOSERS = {closer: opener for opener, closer in _PAIRS.items()}
_VOID_TAGS = {"br", "hr", "wbr", "img", "meta", "link"}  # never closed, and the parser knows it
_ROUTE = re.compile(r"\{\{|\}\}|\[\[|\]\]|\{\||\|\}|<!--|-->|\[|\]|'{2,}|\n"
                    r"|<(/?)([A-Za-z][\w-]{0,30})(?=[\s/>])[^<>]{0,500}?(/?)>")


def wikitext_parse_cost(text: str) -> int:
    """Characters after each construct that never closes, summed: what the parser scans in vain."""
    stacks, bold = {}, None
    for match in _ROUTE.finditer(text):
        token = match.group()
        if match.group(2):  # a tag
            name = match.group(2).lower()
            if match.group(3) or name in _VOID_TAGS:
                continue
            stack = stacks.setdefault("<" + name, [])
            if not match.group(1):
                stack.append(match.start())
            elif stack:
                stack.pop()
        elif token[0] == "'":  # bold and italics close on their own line, or not at all
            bold = match.start() if bold is None else None
        elif token == "\n":
            if bold is not None:
                stacks.setdefault("''", []).append(bold)
                bold = None
        elif token in _PAIRS:
            stacks.setdefault(token, []).append(match.start())
        else:
            stack = stacks.get(_CLOSERS[token])
            if stack:
                stack.pop()
    if bold is not None:
        stacks.setdefault("''", []).append(bold)
    return sum(len(text) - position for stack in stacks.values() for position in stack)


def check_parse_budget(wikitext: str) -> None:
    """Raises PageTooComplex for a page over the size or parse budget."""
    if len(wikitext) > MAX_WIKITEXT_CHARS:
        raise PageTooComplex(f"{len(wikitext)} characters of wikitext (budget {MAX_WIKITEXT_CHARS})")
    # Every construct that could stay unclosed starts with one of these; when even all of them
    # failing could not cost the budget (most pages), the exact sum is not needed.
    openers = sum(map(wikitext.count, ("{{", "[", "{|", "<", "''")))
    if openers * len(wikitext) <= MAX_PARSE_COST:
        return
    cost = wikitext_parse_cost(wikitext)
    if cost > MAX_PARSE_COST:
        raise PageTooComplex(f"unclosed markup would make the parser scan {cost} characters "
                             f"(budget {MAX_PARSE_COST})")


# Sections at an article's end that hold links and citations, not prose: "see also" link lists,
# references, further reading (mostly English bibliographies) and external links (English site
# names). Dropped with their subsections. Notes (注释, 脚注) are kept: when they are not a bare
# <references/>, they are sentences someone wrote.
TAIL_SECTIONS = frozenset({
    "参见", "參見", "参看", "參看", "另见", "另見", "相关条目", "相關條目", "相关词条", "相關詞條", "相关链接", "相關連結",
    "外部链接", "外部連結", "外部連接", "外部链结", "外部鏈接", "站外链接", "站外連結", "延伸阅读", "延伸閱讀", "扩展阅读",
    "擴展閱讀", "参考文献", "參考文獻", "参考资料", "參考資料", "参考来源", "參考來源", "资料来源", "資料來源", "来源",
    "來源", "引用", "see also", "references", "external links", "further reading"})
# A navigation box flattened to a line: short names joined by "|" (or a spaced "·"/"•"), with no
# sentence punctuation. An unspaced "·" is left alone: it joins the parts of a transliterated name.
_NAV_SEPARATOR = re.compile(r"\s*[|｜]\s*|\s+[·•・‧]\s+")
_SENTENCE_PUNCTUATION = re.compile(r"[。，；！？：,;!?]")
NAV_ITEM_MAX_CHARS = 24


def is_navigation_line(line: str) -> bool:
    """``世界历史 | 亚洲史 | 欧洲史``: names of other articles joined by separators, not text."""
    items = [item for item in _NAV_SEPARATOR.split(line) if item.strip()]
    return (len(_NAV_SEPARATOR.findall(line)) >= 1 and len(items) >= 2 and not _SENTENCE_PUNCTUATION.search(line)
            and all(len(item.strip()) <= NAV_ITEM_MAX_CHARS for item in items))


def _heading_title(node) -> str:
    return " ".join(node.title.strip_code().split()).lower()


def _drop_tail_sections(code, changes) -> None:
    """Removes every TAIL_SECTIONS section (heading and body, down to the next heading of its
    level or above) from the top level of ``code``."""
    kept, dropping_below = [], None
    for node in code.nodes:
        if isinstance(node, mwparserfromhell.nodes.Heading):
            if dropping_below is not None and node.level <= dropping_below:
                dropping_below = None
            if dropping_below is None and _heading_title(node) in TAIL_SECTIONS:
                dropping_below = node.level
                changes["wiki_tail_sections_removed"] += 1
        if dropping_below is None:
            kept.append(node)
    code.nodes = kept


def article_lines(title: str, wikitext: str, *, variant: str = "zh-hans", changes=None):
    """Plain-text lines of an article, or None for a disambiguation page. Templates, refs,
    tables, files, categories, interlanguage links and comments are removed; link text is kept;
    headings and list items become lines of their own. Sections of links and citations
    (TAIL_SECTIONS) and navigation lines (``is_navigation_line``) are dropped, counted in
    ``changes`` (a Counter) when given. Raises PageTooComplex for a page over the parse budget."""
    changes = collections.Counter() if changes is None else changes
    if title.endswith(("(消歧义)", "(消歧義)", "（消歧义）", "（消歧義）")):
        return None
    wikitext = resolve_conversion_markup(wikitext, variant=variant)
    check_parse_budget(wikitext)
    code = mwparserfromhell.parse(wikitext)
    if any(_is_disambiguation_template(t) for t in code.filter_templates(recursive=False)):
        return None
    _drop_tail_sections(code, changes)
    _prune(code)
    text = code.strip_code(normalize=True, collapse=True)
    for opener, closer in _LEFTOVER_SPANS[:2]:
        text = _replace_spans(text, opener, closer, lambda _: "")
    text = _LEFTOVER[0].sub("", text)  # self-closing refs before "<ref...</ref>" spans
    text = _replace_spans(text, *_LEFTOVER_SPANS[2], lambda _: "")
    for pattern in _LEFTOVER[1:]:
        text = pattern.sub("", text)
    lines = []
    for line in text.splitlines():
        line = line.strip(" \t*#:;=")
        if not line:
            continue
        if is_navigation_line(line):
            changes["navigation_lines_removed"] += 1
        else:
            lines.append(line)
    return lines
