"""Cleaning on real text: zhwiki pages (../shared/data/zhwiki_xml), the ext corpora's own records,
Google's vocabulary. Each expectation was read off the real page or record, not off our output."""
import collections
import json
import re

import pytest

from tests.conftest import shared_file
from tests.test_pipeline import LOCAL
from wwm_cli import main
from wwm_core.normalize import VOCAB_EQUIVALENTS, join_fields, map_vocab_equivalents, repeats_lead
from wwm_core.text import JSONL_PRESETS, document_from_json_line
from wwm_core.wiki import TAIL_SECTIONS, BrokenPage, article_lines, is_navigation_line, page_elements, parse_page


@pytest.fixture(scope="module")
def pages():
    with open(shared_file("zhwiki_xml/zhwiki-test-pages.xml"), "rb") as handle:
        elements = list(page_elements(iter(lambda: handle.read(1 << 16), b"")))
    assert not [e for e in elements if isinstance(e, BrokenPage)]
    parsed = [parse_page(chunk) for _, chunk in elements]
    return {page.title: page for page in parsed if page.namespace == 0 and not page.is_redirect}


def lines_of(page, **kwargs):
    return article_lines(page.title, page.wikitext, **kwargs)


def test_see_also_navigation_and_external_link_tails_are_dropped(pages):
    history = lines_of(pages["历史"])
    for gone in ("世界历史 | 亚洲史 | 欧洲史 | 非洲史 | 中国历史", "历史学家列表", "歷史學：对历史的研究和记录",
                 "黃俊傑：《歷史思維、歷史知識與社會變遷》."):
        assert gone not in history, gone
    economics = "\n".join(lines_of(pages["经济学"]))
    for gone in ("World Bank Data", "Social Science Research Network", "McCann, Charles Robert"):
        assert gone not in economics, gone  # external links and further reading: English tails
    philosophy = "\n".join(lines_of(pages["哲学"]))
    assert "ISBN" not in philosophy and "The Problems of Philosophy" not in philosophy


def test_real_lists_and_notes_are_kept(pages):
    computing = lines_of(pages["计算机科学"])
    # The article's own list (主要成就), items with and without sentence ends.
    for kept in ("“数位革命”的开端：信息时代与互联网。", "電腦成像廣泛用於娛樂，包括電視、電影、廣告、動畫、電子遊戲等。",
                 "自然语言处理，包括语音到文字（speech-to-text）转换、语言间的自动翻译"):
        assert kept in computing, kept
    history = lines_of(pages["历史"])
    assert "唯物史观" in history and "史学史" in history  # list items of the body, before 参见
    nation = "\n".join(lines_of(pages["民族"]))
    assert "關於「nation」這個詞彙應當如何翻譯成中文的討論" in nation, "notes are sentences someone wrote"


def test_every_tail_section_of_the_real_pages_is_counted(pages):
    heading = re.compile(r"^(=+)\s*(.*?)\s*\1\s*$", re.M)
    for title, page in pages.items():
        changes = collections.Counter()
        lines_of(page, changes=changes)
        # Independent: the page's own headings; a tail heading nested in another tail section
        # goes with it.
        expected, inside = 0, None
        for match in heading.finditer(page.wikitext):
            level, name = len(match.group(1)), match.group(2).strip().lower()
            if inside is not None and level <= inside:
                inside = None
            if inside is None and name in TAIL_SECTIONS:
                expected, inside = expected + 1, level
        assert changes["wiki_tail_sections_removed"] == expected, title


def test_a_navigation_box_outside_a_tail_section_is_dropped_and_counted(pages):
    wikitext = pages["历史"].wikitext
    block = wikitext[wikitext.index("=== 各类历史 ==="):wikitext.index("{{Col-end}}")]  # the real navbox list
    changes = collections.Counter()
    lines = article_lines("历史", block, changes=changes)
    assert lines == ["各类历史", "当今各国历史：当今世界各国和地区历史的主题列表"]
    navigation_items = [line for line in block.splitlines() if line.startswith("*") and "|" in line]
    assert changes["navigation_lines_removed"] == len(navigation_items) == 7


def test_navigation_lines_and_names():
    assert is_navigation_line("世界历史 | 亚洲史 | 欧洲史")
    assert is_navigation_line("经济史 | 农业史") and is_navigation_line("数学 · 物理 · 化学")
    assert not is_navigation_line("布莱兹·帕斯卡")  # a transliterated name
    assert not is_navigation_line("如 a|b 所示，这是一个句子。")
    assert not is_navigation_line("参见 | 这是一个很长的句子，里面有逗号")


def test_the_news_lead_is_dropped_when_it_repeats_the_content():
    records = {}
    with open(shared_file("ext_corpora/nlp_chinese_corpus_readme_examples.jsonl"), "rb") as handle:
        for line in handle:
            records[json.loads(line)["_corpus"]] = line
    news = json.loads(records["news2016zh"])
    assert news["content"].startswith(news["desc"])  # the real record: desc is cut from content
    document = document_from_json_line("news.json", 1, records["news2016zh"], preset=JSONL_PRESETS["news2016zh"])
    assert document.text == news["content"] and document.changes == {"repeated_lead_dropped": 1}
    web = json.loads(records["webtext2019zh"])
    document = document_from_json_line("web.json", 1, records["webtext2019zh"], preset=JSONL_PRESETS["webtext2019zh"])
    assert document.text == web["desc"] + "\n" + web["content"] and document.changes == {}
    # A lead cut short and marked so, or with other spacing, repeats the content all the same.
    assert repeats_lead(news["desc"][:40] + "...", news["content"])
    assert repeats_lead(news["desc"][:40] + "……", news["content"])
    assert repeats_lead(" ".join(news["desc"][:30]), news["content"])
    assert not repeats_lead("完全不同的导语", news["content"]) and not repeats_lead("...", news["content"])
    assert join_fields(["", "甲", "甲乙", ""]) == ("甲乙", 1)


def test_prepare_drops_the_news_lead_and_counts_it(tmp_path):
    source = shared_file("ext_corpora/nlp_chinese_corpus_readme_examples.jsonl")
    news_line = next(line for line in source.read_text(encoding="utf-8").splitlines() if '"news2016zh"' in line)
    (tmp_path / "news.json").write_text(news_line + "\n", encoding="utf-8")
    assert main(["prepare", f"--input={tmp_path / 'news.json'}", "--input_format=jsonl", "--jsonl_preset=news2016zh",
                 f"--output={tmp_path / 'out'}", "--progress=off", *LOCAL]) == 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["counters"]["changes.repeated_lead_dropped"] == 1
    import pyarrow.parquet as pq

    [row] = pq.read_table(tmp_path / "out" / manifest["files"][0]).to_pylist()
    content = json.loads(news_line)["content"]
    assert "".join(row["sentences"]) == content.replace("\n", "")
    assert row["title"] == json.loads(news_line)["title"]


def test_traditional_titles_are_converted_like_the_text(tmp_path):
    pages = shared_file("zhwiki_xml/zhwiki-test-pages.xml")
    assert main(["prepare", f"--input={pages}", "--input_format=wiki", "--opencc_config=t2s",
                 f"--output={tmp_path / 'out'}", "--progress=off", *LOCAL]) == 0
    import pyarrow.parquet as pq

    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text(encoding="utf-8"))
    titles = {row["title"] for name in manifest["files"] for row in pq.read_table(tmp_path / "out" / name).to_pylist()}
    assert {"文学", "天文学", "化学"} <= titles and not {"文學", "天文學", "化學"} & titles
    assert manifest["counters"]["changes.wiki_tail_sections_removed"] > 0


# ---------------------------------------------------------------- characters the vocabulary lacks

def test_each_equivalent_replaces_an_unknown_character_with_a_known_one(bundled_vocab):
    from wwm_core.tokenization import make_wordpiece_tokenizer, tokenize_sentences

    tokenizer = make_wordpiece_tokenizer(bundled_vocab, do_lower_case=True)
    unknown = bundled_vocab.id_of("[UNK]")
    sources = list(VOCAB_EQUIVALENTS)
    before = tokenize_sentences(tokenizer, sources)
    assert before.ids.tolist() == [unknown] * len(sources), "every character mapped is [UNK] as written"
    after = tokenize_sentences(tokenizer, [VOCAB_EQUIVALENTS[c] for c in sources])
    assert unknown not in after.ids.tolist(), "and every equivalent is known"
    assert map_vocab_equivalents("他说：“好——走吧……”") == ('他说："好--走吧⋯⋯"', 6)


def test_equivalents_cut_the_unknown_rate_of_real_text(bundled_vocab):
    """Real sentences: UD Chinese GSDSimp's (Wikipedia) and the ext corpora's records."""
    from wwm_core.normalize import normalize_text
    from wwm_core.tokenization import make_wordpiece_tokenizer, tokenize_sentences

    texts = [line[len("# text = "):].strip()
             for line in shared_file("ud_chinese_gsdsimp/zh_gsdsimp-ud-dev.conllu").read_text(encoding="utf-8")
             .splitlines() if line.startswith("# text = ")]
    tokenizer = make_wordpiece_tokenizer(bundled_vocab, do_lower_case=True)
    unknown = bundled_vocab.id_of("[UNK]")

    def rate(mapped: bool) -> float:
        ids = tokenize_sentences(tokenizer, [normalize_text(t, vocab_equivalents=mapped)[0] for t in texts]).ids
        return float((ids == unknown).mean())

    quotes = sum(t.count("“") + t.count("”") for t in texts)
    assert quotes > 50
    as_written, mapped = rate(False), rate(True)
    print(f"UD dev: [UNK] {as_written:.3%} as written, {mapped:.3%} with --vocab_equivalents")
    assert as_written > 0.004 and mapped < as_written / 5


def test_prepare_counts_the_characters_it_maps(tmp_path):
    source = shared_file("ext_corpora/nlp_chinese_corpus_readme_examples.jsonl")
    records = [json.loads(line) for line in source.read_text(encoding="utf-8").splitlines()]
    expected = sum(sum(record["text"].count(c) for c in VOCAB_EQUIVALENTS)
                   for record in records if record["_corpus"] == "wiki2019zh")
    assert expected >= 2  # the real record's “经济学”
    assert main(["prepare", f"--input={source}", "--input_format=jsonl", "--jsonl_preset=wiki2019zh",
                 "--vocab_equivalents=true", f"--output={tmp_path / 'out'}", "--progress=off", *LOCAL]) == 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["counters"]["changes.vocab_equivalents_mapped"] == expected
    assert manifest["config"]["cleaning"]["vocab_equivalents"] is True
