"""Cleaning: wikitext to text, conversion markup, normalization, sentences, filters (pure functions)."""
from wwm_core.clean import clean_document
from wwm_core.config import CleaningConfig
from wwm_core.normalize import normalize_text
from wwm_core.text import LINES, PROSE, WIKITEXT, RawDocument, split_sentences
from wwm_core.wiki import article_lines, resolve_conversion_markup

WIKITEXT_SAMPLE = """{{Infobox|name=数学|image=x.png}}
'''数学'''是研究[[数量]]、[[结构 (数学)|结构]]的学科<ref name="a">{{cite web|url=x}}</ref>。<!-- 注释 -->
[[File:Euclid.jpg|thumb|欧几里得]]
== 历史 ==
* 古代的[[算术]]。
# 近代的[[微积分|-{zh-hans:微积分;zh-hant:微積分}-]]。
{| class="wikitable"
|-
| 表格 || 内容
|}
计算机（{{lang-en|computer}}）又称-{zh-cn:计算机;zh-tw:電腦;}-。-{H|zh-cn:软件;zh-tw:軟體}-
参见[http://example.com 外部网站]。
[[Category:数学]]
[[en:Mathematics]]
"""


def test_wikitext_becomes_plain_lines():
    lines = article_lines("", WIKITEXT_SAMPLE)
    text = "\n".join(lines)
    for markup in ("{{", "}}", "[[", "]]", "|}", "{|", "-{", "}-", "<ref", "<!--", "'''", "=="):
        assert markup not in text, markup
    assert lines[0] == "数学是研究数量、结构的学科。"  # link text kept, ref and comment gone
    assert "历史" in lines  # a heading is a line of its own
    assert "古代的算术。" in lines and "近代的微积分。" in lines  # list markers gone
    assert "计算机又称计算机。" in lines  # lang template and its emptied brackets gone
    assert "参见外部网站。" in lines  # external link keeps its label
    for gone in ("欧几里得", "表格", "Category", "Mathematics", "thumb", "软件"):
        assert gone not in text, gone


def test_conversion_markup_picks_the_target_variant():
    assert resolve_conversion_markup("-{zh-hans:计算机;zh-hant:電腦;}-") == "计算机"
    assert resolve_conversion_markup("-{zh-hans:计算机;zh-hant:電腦;}-", variant="zh-hant") == "電腦"
    assert resolve_conversion_markup("-{zh-tw:資訊;zh-cn:信息;}-") == "信息"
    assert resolve_conversion_markup("-{zh-tw:資訊;zh-hk:資訊}-") == "資訊"  # no simplified variant: the first
    assert resolve_conversion_markup("保留-{著作}-原文") == "保留著作原文"
    assert resolve_conversion_markup("-{H|zh-cn:软件;zh-tw:軟體}-隐藏") == "隐藏"
    assert resolve_conversion_markup("-{A|zh-cn:软件;zh-tw:軟體}-") == "软件"


def test_normalization_reports_what_it_changed():
    text, changes = normalize_text("ＡＢＣ１２３，&amp;&#x4e2d;\u200b文\x07  多\u3000空格\r\n下一行")
    assert text == "ABC123，&中文 多 空格\n下一行"
    assert changes == {"full_width_to_half_width": 7, "html_entities_decoded": 2, "invisible_chars_removed": 1,
                       "control_chars_removed": 1, "spaces_collapsed": 2}
    kept, _ = normalize_text("ＡＢＣ", full_width_to_half_width=False)
    assert kept == "ＡＢＣ"
    web, changes = normalize_text("问题？<br>如果有，<b>能</b>写吗？a<b 与 3 > 2")
    assert web == "问题？\n如果有，能写吗？a<b 与 3 > 2" and changes["html_tags_removed"] == 3


def test_sentences_split_at_chinese_and_english_ends_keeping_closing_quotes():
    text = "他说：“今天下雨了！”我们回家吧。真的吗？是的……好。Hello world. This is fine; ok"
    assert split_sentences(text) == ["他说：“今天下雨了！”", "我们回家吧。", "真的吗？", "是的……", "好。",
                                     "Hello world.", "This is fine;", "ok"]


def _clean(text, layout=PROSE, **config):
    return clean_document(RawDocument("d", text, layout, title="标题"), config=CleaningConfig(**config))


def test_filters_have_reasons():
    assert _clean("  \n ")[1] == "empty"
    assert _clean("短。", min_document_chars=5)[1] == "too_short"
    assert _clean("长" * 50, max_document_chars=10)[1] == "too_long"
    assert _clean("This is English text only.", min_cjk_share=0.3)[1] == "low_cjk_share"
    assert _clean("中文为主的文本 with some English.", min_cjk_share=0.3)[1] is None
    assert _clean("{{disambig}}\n'''苹果'''可以指：", WIKITEXT)[1] == "disambiguation"


def test_boilerplate_lines_are_removed_and_counted():
    document, reason, changes = _clean("正文第一句。\n责任编辑：张三\n版权所有 © 某网站\n正文第二句。")
    assert reason is None and document.sentences == ("正文第一句。", "正文第二句。")
    assert changes["boilerplate_lines_removed"] == 2


def test_google_layout_keeps_lines_as_sentences():
    document, _, _ = _clean("第一行。第二句在同一行。\n第二行", LINES)
    assert document.sentences == ("第一行。第二句在同一行。", "第二行")
