"""MediaWiki XML dumps: safe page extraction, and wikitext to plain text.

Pages are cut out of the dump text one ``<page>`` element at a time and each is parsed on its own
with defusedxml, so memory is bounded by one page, a broken page is one dead letter (not the end
of the file), and a DTD or entity declaration (billion laughs, XXE) is refused before any page
is parsed. Multistream dumps (``*-multistream.xml.bz2`` with ``*-multistream-index.txt.bz2``) are
read by byte ranges of whole bz2 streams, so many workers share one dump.
"""
import bz2
import dataclasses
import re

import defusedxml.ElementTree as SafeET
import mwparserfromhell

MAX_PAGE_BYTES = 64 * 1024 * 1024


class UnsafeXmlError(ValueError):
    """The dump declares a DTD or entities, which real dumps never do: refused as an attack."""


@dataclasses.dataclass(frozen=True)
class Page:
    page_id: str
    title: str
    namespace: int
    is_redirect: bool
    wikitext: str


@dataclasses.dataclass(frozen=True)
class BrokenPage:
    where: str  # "line N" or "byte N"
    reason: str  # counter name: broken_xml_page, page_too_large
    detail: str
    raw: str


_DECLARATION = re.compile(rb"<!(DOCTYPE|ENTITY)", re.IGNORECASE)


def check_header(header: bytes) -> None:
    """The part of a dump before its first page: refuse DTDs and entity declarations."""
    if _DECLARATION.search(header):
        raise UnsafeXmlError("the XML declares a DTD or entities (<!DOCTYPE/<!ENTITY); MediaWiki dumps never "
                             "do, and expanding them is how billion-laughs and XXE attacks work: refused")


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


def page_chunks(lines):
    """Cuts ``<page>`` elements out of an iterable of byte lines.

    Yields (where, chunk) for every page; checks the header before the first page. Memory is
    bounded by one page: a page over MAX_PAGE_BYTES is skipped and reported as a BrokenPage.
    """
    header, chunk, size, start, in_header = [], [], 0, 0, True
    for number, line in enumerate(lines, start=1):
        stripped = line.lstrip()
        if in_header:
            if not stripped.startswith(b"<page>"):
                header.append(line)
                continue
            check_header(b"".join(header))
            in_header = False
        if stripped.startswith(b"<page>"):
            chunk, size, start = [], 0, number
        if start:
            size += len(line)
            if size <= MAX_PAGE_BYTES:
                chunk.append(line)
        if stripped.startswith(b"</page>") and start:
            if size > MAX_PAGE_BYTES:
                yield f"line {start}", BrokenPage(f"line {start}", "page_too_large", f"{size} bytes", "")
            else:
                yield f"line {start}", b"".join(chunk)
            chunk, size, start = [], 0, 0
    if in_header:
        check_header(b"".join(header))
    if start:
        yield f"line {start}", BrokenPage(f"line {start}", "broken_xml_page", "the dump ends inside a page",
                                          b"".join(chunk)[:200].decode("utf-8", "backslashreplace"))


def multistream_offsets(index_lines) -> list:
    """Sorted distinct byte offsets of the bz2 streams, from a multistream index ("offset:id:title")."""
    offsets = set()
    for line in index_lines:
        line = line.strip()
        if line:
            offsets.add(int(line.split(b":", 1)[0]))
    return sorted(offsets)


def decompress_streams(data: bytes):
    """Decompressed bytes of consecutive whole bz2 streams (a byte range of a multistream dump)."""
    out = []
    while data:
        decompressor = bz2.BZ2Decompressor()
        out.append(decompressor.decompress(data))
        if not decompressor.eof:
            raise EOFError("truncated bz2 stream")
        data = decompressor.unused_data
    return b"".join(out)


# ---------------------------------------------------------------- wikitext to text

# Variants of the zh conversion markup that each OpenCC target prefers, best first.
VARIANT_PREFERENCE = {
    "zh-hans": ("zh-hans", "zh-cn", "zh-sg", "zh-my", "zh"),
    "zh-hant": ("zh-hant", "zh-tw", "zh-hk", "zh-mo", "zh"),
}
_VARIANT_NAMES = {"zh", "zh-hans", "zh-hant", "zh-cn", "zh-sg", "zh-my", "zh-tw", "zh-hk", "zh-mo"}
_CONVERSION = re.compile(r"-\{(.*?)\}-", re.S)
_FLAGS = re.compile(r"^\s*([A-Za-z;+\-]{1,6})\s*\|(.*)$", re.S)


def resolve_conversion_markup(text: str, *, variant: str = "zh-hans") -> str:
    """``-{zh-hans:计算机;zh-hant:電腦}-`` -> the preferred variant's text; ``-{text}-`` -> text;
    hidden rules (``-{H|...}-``) -> nothing."""
    preference = VARIANT_PREFERENCE[variant]

    def choose(match):
        body = match.group(1)
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

    return _CONVERSION.sub(choose, text)


_DROPPED_TAGS = {"ref", "references", "table", "gallery", "math", "chem", "ce", "score", "timeline", "imagemap",
                 "syntaxhighlight", "source", "pre", "code", "graph", "mapframe", "templatedata", "noinclude",
                 "includeonly", "hiero", "inputbox", "categorytree"}
_DROPPED_LINK_PREFIXES = {"file", "image", "media", "category", "文件", "檔案", "档案", "图像", "圖像", "分类", "分類",
                          "wikipedia", "wp", "help", "template", "portal", "user", "special", "talk"}
_LANGUAGE_PREFIX = re.compile(r"^[a-z]{2,3}(-[a-z]{2,8})*$")
_DISAMBIGUATION_TEMPLATES = {"disambig", "disambiguation", "dab", "dp", "消歧义", "消歧義", "disambig-cleanup"}
_LEFTOVER = [re.compile(p, re.S) for p in (r"\{\{.*?\}\}", r"\{\|.*?\|\}", r"<ref[^>]*/>", r"<ref.*?</ref>",
                                            r"<[^>]{1,200}>", r"\[\[|\]\]", r"\{\{|\}\}|\{\||\|\}", r"-\{|\}-",
                                            r"[（(][\s,，;；、]*[）)]")]  # brackets emptied by removed templates


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


def article_lines(title: str, wikitext: str, *, variant: str = "zh-hans"):
    """Plain-text lines of an article, or None for a disambiguation page. Templates, refs,
    tables, files, categories, interlanguage links and comments are removed; link text is kept;
    headings and list items become lines of their own."""
    if title.endswith(("(消歧义)", "(消歧義)", "（消歧义）", "（消歧義）")):
        return None
    code = mwparserfromhell.parse(resolve_conversion_markup(wikitext, variant=variant))
    if any(_is_disambiguation_template(t) for t in code.filter_templates(recursive=False)):
        return None
    _prune(code)
    text = code.strip_code(normalize=True, collapse=True)
    for pattern in _LEFTOVER:  # unbalanced markup the parser kept as text
        text = pattern.sub("", text)
    return [line.strip(" \t*#:;=") for line in text.splitlines() if line.strip(" \t*#:;=")]
