"""From a raw document to a clean one: wikitext to text, normalization, sentences, filters."""
import collections
import json
import re

from wwm_core.normalize import normalize_text
from wwm_core.text import LINES, WIKITEXT, Document, split_sentences
from wwm_core.wiki import article_lines


# Lines that are page furniture, not text: section titles of reference lists, and the
# copyright and editor lines of news and web pages.
_BOILERPLATE_TITLES = (r"参考文献|參考文獻|参考资料|參考資料|参见|參見|外部链接|外部連結|注释|註釋|延伸阅读|延伸閱讀|"
                       r"see also|references|external links|further reading")
_BOILERPLATE_ANYWHERE = r"版权所有|版權所有|all rights reserved|copyright\s*(©|\(c\))"
_BOILERPLATE_STARTS = r"责任编辑|責任編輯|原标题|本文来源"
_BOILERPLATE = re.compile(rf"^({_BOILERPLATE_TITLES})$|{_BOILERPLATE_ANYWHERE}|^({_BOILERPLATE_STARTS})", re.IGNORECASE)
# Any of them anywhere in a document: one search, so that lines are checked only in the few
# documents that have one. It searches the lower-cased text (the phrases are lower case): faster
# than re.IGNORECASE, which keeps the regex engine from skipping ahead (docs/performance.md, Cleaning).
_MAY_HAVE_BOILERPLATE = re.compile(rf"{_BOILERPLATE_TITLES}|{_BOILERPLATE_ANYWHERE}|{_BOILERPLATE_STARTS}")
_CJK = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ebef]")


def cjk_share(text: str) -> float:
    visible = len(text) - text.count(" ")
    return len(_CJK.findall(text)) / visible if visible else 0.0


def clean_document(raw, *, config, wiki_variant: str = "zh-hans"):
    """``config``: a config.CleaningConfig; ``wiki_variant``: which side of
    ``-{zh-hans:…;zh-hant:…}-`` to keep. Returns (Document or None, the filter reason or None,
    Counter of changes made)."""
    changes = collections.Counter(raw.changes)
    text = raw.text
    if raw.layout == WIKITEXT:
        lines = article_lines(raw.title, text, variant=wiki_variant, changes=changes)
        if lines is None:
            return None, "disambiguation", changes
        text = "\n".join(lines)
    text, normalized = normalize_text(text, full_width_to_half_width=config.full_width_to_half_width,
                                      vocab_equivalents=config.vocab_equivalents)
    changes.update(normalized)
    lines = []
    drop_boilerplate = config.drop_boilerplate and _MAY_HAVE_BOILERPLATE.search(text.lower())
    for line in text.split("\n"):
        line = line.strip()
        if drop_boilerplate and line and _BOILERPLATE.search(line):
            changes["boilerplate_lines_removed"] += 1
        elif line:
            lines.append(line)
    sentences = lines if raw.layout == LINES else [s for line in lines for s in split_sentences(line)]
    num_chars = sum(map(len, sentences))
    if num_chars == 0:
        reason = "empty"
    elif num_chars < config.min_document_chars:
        reason = "too_short"
    elif num_chars > config.max_document_chars:
        reason = "too_long"
    elif config.min_cjk_share and cjk_share("".join(sentences)) < config.min_cjk_share:
        reason = "low_cjk_share"
    else:
        document = Document(raw.id, tuple(sentences), source=raw.source, title=raw.title,
                            changes=json.dumps(dict(sorted(changes.items())), ensure_ascii=False) if changes else "{}")
        return document, None, changes
    return None, reason, changes
