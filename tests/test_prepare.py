"""`wwm prepare` and the raw-corpus readers on Beam's local runner: wiki dumps (plain, bz2,
multistream read in parallel), XML attacks, broken input, the ext-corpus presets, Parquet."""
import bz2
import json
import re

import pyarrow.parquet as pq
import pytest

from pipelines import reading
from wwm_cli.data import prepare, run
from tests.conftest import shared_file

LOCAL = ["--runner=BundleBasedDirectRunner"]


def prepare_docs(tmp_path, inputs, *extra, name="prep"):
    manifest = prepare([f"--input={i}" for i in inputs] + [f"--output={tmp_path / name}", *extra, *LOCAL])
    rows = [row for f in sorted((tmp_path / name / "documents").glob("*.parquet"))
            for row in pq.read_table(f).to_pylist()]
    assert manifest["accounting"]["balanced"] and manifest["num_documents"] == len(rows)
    return manifest, {row["id"]: row for row in rows}


PAGE = """  <page>
    <title>{title}</title>
    <ns>{ns}</ns>
    <id>{page_id}</id>{redirect}
    <revision>
      <id>1{page_id}</id>
      <text xml:space="preserve">{text}</text>
    </revision>
  </page>
"""
HEADER = """<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/" version="0.10" xml:lang="zh">
  <siteinfo>
    <sitename>Wikipedia</sitename>
  </siteinfo>
"""


def page(page_id, title, text, ns=0, redirect=False):
    return PAGE.format(page_id=page_id, title=title, ns=ns, text=text,
                       redirect='\n    <redirect title="x" />' if redirect else "")


def test_the_real_zhwiki_excerpt_is_cleaned_of_markup_and_converted(tmp_path):
    dump = shared_file("zhwiki_xml/zhwiki-test-pages.xml")
    manifest, documents = prepare_docs(tmp_path, [dump], "--input_format=wiki", "--opencc_config=t2s")
    counters = manifest["counters"]
    assert counters["records_in"] == 33 and counters["documents_filtered.not_article"] == 10
    assert len(documents) == 23
    for document in documents.values():
        text = "\n".join(document["sentences"])
        for markup in ("{{", "[[", "|}", "-{", "<ref"):
            assert markup not in text, (document["title"], markup)
    by_title = {d["title"]: d for d in documents.values()}
    assert "文學" not in by_title, "titles are converted like the text"
    literature = "".join(by_title["文学"]["sentences"])  # a traditional-Chinese page
    assert "文学" in literature and "文學" not in literature
    # Without --opencc_config, the text stays as written (HFL's recipes do not convert).
    _, kept = prepare_docs(tmp_path, [dump], "--input_format=wiki", name="as_written")
    assert "文學" in "".join({d["title"]: d for d in kept.values()}["文學"]["sentences"])


def write_multistream(folder, pages, *, per_stream):
    """A multistream dump as Wikimedia makes them: the header, then bz2 streams of pages, then the
    footer, each its own stream; the index gives each page's stream offset."""
    dump = folder / "zhwiki-test-pages-articles-multistream.xml.bz2"
    streams, index = [bz2.compress(HEADER.encode())], []
    for first in range(0, len(pages), per_stream):
        offset = sum(map(len, streams))
        for page_id, title, _ in pages[first:first + per_stream]:
            index.append(f"{offset}:{page_id}:{title}")
        streams.append(bz2.compress("".join(page(*p) for p in pages[first:first + per_stream]).encode()))
    streams.append(bz2.compress(b"</mediawiki>\n"))
    dump.write_bytes(b"".join(streams))
    (folder / "zhwiki-test-pages-articles-multistream-index.txt.bz2").write_bytes(
        bz2.compress(("\n".join(index) + "\n").encode()))
    return dump


PAGES = [(100 + i, f"条目{i}", f"'''条目{i}'''是第{i}个[[测试]]条目。它有两句话。{{{{模板}}}}") for i in range(23)]


def test_a_multistream_dump_is_read_in_parallel_ranges_like_a_sequential_read(tmp_path, monkeypatch):
    folder = tmp_path / "multi"
    folder.mkdir()
    dump = write_multistream(folder, PAGES, per_stream=3)
    plain = tmp_path / "plain.xml.bz2"
    plain.write_bytes(bz2.compress((HEADER + "".join(page(*p) for p in PAGES) + "</mediawiki>\n").encode()))

    monkeypatch.setattr(reading, "STREAMS_PER_READ", 2)
    from pipelines.inputs import match_sources
    from wwm_core.config import SourceSpec

    (file,), _ = match_sources([SourceSpec("wiki", "wiki", (str(dump),), "none")])
    ranges = list(reading.plan_units(file, input_format="wiki", unit_bytes=1 << 20))
    # header + 8 page streams (the footer rides with the last): 9 streams, 2 per read
    assert len(ranges) == 5 and all(r.start is not None for r in ranges)

    _, parallel = prepare_docs(tmp_path, [dump], "--input_format=wiki", name="parallel")
    _, sequential = prepare_docs(tmp_path, [plain], "--input_format=wiki", name="sequential")
    as_pages = lambda docs: sorted((i.split("#")[1], d["title"], tuple(d["sentences"])) for i, d in docs.items())
    assert as_pages(parallel) == as_pages(sequential)
    assert len(parallel) == 23
    assert ("100", "条目0", ("条目0是第0个测试条目。", "它有两句话。")) in as_pages(parallel)


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol9 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
]>
<mediawiki>
""" + page(1, "炸弹", "&lol9;") + "</mediawiki>\n"
XXE = """<?xml version="1.0"?>
<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<mediawiki>
""" + page(2, "外部实体", "&xxe;") + "</mediawiki>\n"


def test_xml_attacks_are_refused_with_a_clear_reason(tmp_path):
    (tmp_path / "laughs.xml").write_text(BILLION_LAUGHS)
    (tmp_path / "xxe.xml").write_text(XXE)
    good = tmp_path / "good.xml"
    good.write_text(HEADER + page(7, "好", "正常的条目。") + "</mediawiki>\n")
    manifest, documents = prepare_docs(tmp_path, [tmp_path / "laughs.xml", tmp_path / "xxe.xml", good],
                                       "--input_format=wiki")
    assert manifest["counters"]["dead_lettered.unsafe_xml"] == 2
    assert [d["title"] for d in documents.values()] == ["好"]
    rows = [json.loads(line) for line in (tmp_path / "prep" / "dead_letter").glob("*.jsonl").__next__()
            .read_text().splitlines()]
    assert all("DTD" in row["detail"] for row in rows) and "root:" not in json.dumps(rows)


def test_broken_pages_truncated_bz2_redirects_and_namespaces_are_accounted_for(tmp_path):
    pages = [page(1, "正常", "第一个正常条目。"), page(2, "重定向", "#REDIRECT [[正常]]", redirect=True),
             page(3, "Wikipedia:方针", "不是条目。", ns=4), page(4, "消歧义页", "{{disambig}}苹果可以指：水果。"),
             "  <page>\n    <title>坏的</title>\n    <ns>0<ns>\n  </page>\n",  # broken XML
             page(5, "空", ""), page(6, "最后", "最后一个完整的条目。")]
    broken = tmp_path / "broken.xml"
    broken.write_text(HEADER + "".join(pages) + "</mediawiki>\n")
    data = bz2.compress(broken.read_bytes())
    truncated = tmp_path / "truncated.xml.bz2"
    truncated.write_bytes(data[: len(data) - 40])
    manifest, documents = prepare_docs(tmp_path, [broken, truncated], "--input_format=wiki", "--dedup=none")
    counters = manifest["counters"]
    assert counters["dead_lettered.broken_xml_page"] == 1
    assert counters["dead_lettered.truncated_compressed_file"] == 1
    assert counters["documents_filtered.redirect"] >= 1 and counters["documents_filtered.not_article"] >= 1
    assert counters["documents_filtered.disambiguation"] >= 1 and counters["documents_filtered.empty"] >= 1
    titles = sorted(d["title"] for d in documents.values() if d["id"].startswith("wiki:broken.xml#"))
    assert titles == ["最后", "正常"]
    balance = manifest["accounting"]
    assert balance["records_in"] == balance["out"] + balance["filtered"] + balance["dead_lettered"]


EXT_RECORDS = {
    "wiki2019zh": {"id": "53", "title": "经济学", "text": "经济学\n\n经济学是一门社会科学。"},
    "news2016zh": {"news_id": "1", "title": "新闻标题", "desc": "新闻摘要。", "content": "新闻正文。"},
    "baike2019qa": {"qid": "q1", "title": "问题？", "desc": "", "answer": "回答的内容。"},
    "webtext2019zh": {"qid": 2, "title": "提问", "desc": "描述。", "content": "回答正文。", "star": 3},
    "translation2019zh": {"english": "Hello.", "chinese": "你好。"},
}
EXPECTED = {"wiki2019zh": ["经济学", "经济学是一门社会科学。"], "news2016zh": ["新闻摘要。", "新闻正文。"],
            "baike2019qa": ["回答的内容。"], "webtext2019zh": ["描述。", "回答正文。"], "translation2019zh": ["你好。"]}


@pytest.mark.parametrize("preset", sorted(EXT_RECORDS))
def test_each_ext_corpus_preset_reads_its_fields(tmp_path, preset):
    corpus = tmp_path / f"{preset}.json"
    corpus.write_text(json.dumps(EXT_RECORDS[preset], ensure_ascii=False) + "\n")
    _, documents = prepare_docs(tmp_path, [corpus], "--input_format=jsonl", f"--jsonl_preset={preset}")
    (document,) = documents.values()
    assert document["sentences"] == EXPECTED[preset] and document["source"] == preset
    assert document["title"] == EXT_RECORDS[preset].get("title", "")


def test_the_published_example_records_read_with_their_presets(tmp_path):
    examples = shared_file("ext_corpora/nlp_chinese_corpus_readme_examples.jsonl")
    for line in examples.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        preset = record["_corpus"]
        corpus = tmp_path / f"{preset}.jsonl"
        corpus.write_text(line + "\n", encoding="utf-8")
        _, documents = prepare_docs(tmp_path, [corpus], "--input_format=jsonl", f"--jsonl_preset={preset}",
                                    name=f"prep-{preset}")
        (document,) = documents.values()
        assert len("".join(document["sentences"])) > 10, preset


def test_prepared_parquet_feeds_wwm_run(tmp_path):
    corpus = tmp_path / "news.jsonl"
    corpus.write_text("\n".join(json.dumps({"title": f"标题{i}", "desc": f"第{i}条新闻的摘要。",
                                            "content": "正文&amp;内容。" * 3}, ensure_ascii=False)
                                for i in range(6)) + "\n")
    prepared, documents = prepare_docs(tmp_path, [corpus], "--input_format=jsonl", "--jsonl_preset=news2016zh")
    assert all(json.loads(d["changes"]).get("html_entities_decoded") == 3 for d in documents.values())
    manifest = run([f"--input={tmp_path / 'prep' / 'documents' / '*.parquet'}", "--input_format=parquet",
                    f"--output={tmp_path / 'out'}", "--dupe_factor=2", "--max_seq_length=128", "--segmenter=jieba",
                    *LOCAL])
    assert manifest["accounting"]["records_in"] == prepared["num_documents"] == 6
    assert manifest["num_instances"] > 0 and re.match(r"part-\d{5}-of-\d{5}\.tfrecord", manifest["files"][0])
    # The run points to the prepare it read, with that prepare's sources and cleaning.
    link = manifest["prepared"]
    assert link["manifest"] == str(tmp_path / "prep" / "manifest.json") and link["num_documents"] == 6
    assert link["sources"][0]["jsonl_preset"] == "news2016zh" and "min_document_chars" in link["cleaning"]


BASE_ARTICLE = ("长江是中国第一长河，全长约六千三百公里。它发源于青藏高原，流经十一个省级行政区，最后注入东海。"
                "长江流域是中国经济最发达的地区之一，三峡工程是世界上规模最大的水利枢纽工程。") * 3


def test_near_duplicates_are_dropped_at_the_threshold(tmp_path):
    near_copy = BASE_ARTICLE.replace("东海", "大海", 1)  # one word changed
    other = "北京是中华人民共和国的首都，也是全国的政治和文化中心。这座城市有三千多年的建城史。" * 3
    corpus = tmp_path / "docs.jsonl"
    lines = [json.dumps({"text": t}, ensure_ascii=False).encode() for t in (BASE_ARTICLE, near_copy, other)]
    corpus.write_bytes(b"\n".join(lines) + b"\n")
    starts = [0, len(lines[0]) + 1, len(lines[0]) + len(lines[1]) + 2]  # ids hold where each line begins
    manifest, documents = prepare_docs(tmp_path, [corpus], "--input_format=jsonl", "--near_duplicate_threshold=0.8")
    # Of the near pair, the document with the smaller id is kept.
    kept = min(f"jsonl:docs.jsonl@{starts[0]}", f"jsonl:docs.jsonl@{starts[1]}")
    assert sorted(documents) == sorted([kept, f"jsonl:docs.jsonl@{starts[2]}"])
    assert manifest["counters"]["documents_filtered.near_duplicate"] == 1
    _, kept_all = prepare_docs(tmp_path, [corpus], "--input_format=jsonl", name="off")
    assert len(kept_all) == 3


def test_band_layout_follows_the_threshold():
    from wwm_core.near_dedup import band_layout

    for threshold in (0.5, 0.7, 0.8, 0.9):
        bands, rows = band_layout(threshold)
        assert bands * rows == 128 and abs((1 / bands) ** (1 / rows) - threshold) < 0.1


def test_signatures_are_datasketchs_minhash_of_the_shingles():
    """The compiled shingle hashes give the very signatures of datasketch's own MinHash (default
    SHA-1 hash) over the text's 5-character shingles cut in Python, for Chinese, ASCII, 4-byte
    characters, spaces, texts of up to five characters, empty ones and long ones."""
    import hashlib
    import struct

    import numpy as np
    from datasketch import MinHash

    from wwm_core.kernels import sha1_hash32
    from wwm_core.near_dedup import NUM_PERM, SEED, signatures

    def shingles(sentences, size=5):
        text = "".join(sentences).replace(" ", "")
        if len(text) <= size:
            return [text.encode("utf-8")] if text else []
        return [text[i:i + size].encode("utf-8") for i in range(len(text) - size + 1)]

    documents = [[BASE_ARTICLE], ["长江是中国第一长河。", "全长约 6300 公里，about 3,900 miles."], [], [""], ["a b"],
                 ["12345"], ["123456"], ["😀😀x😀😀é"], ["ab😀cdé fg𝄞h", "𠀀𠀁𠀂𠀃𠀄𠀅"], [BASE_ARTICLE * 40]]
    expected = [MinHash.bulk([shingles(d)], num_perm=NUM_PERM, seed=SEED)[0].hashvalues for d in documents]
    assert all(np.array_equal(got, want) for got, want in zip(signatures(documents), expected, strict=True))
    # The kernel against hashlib, on lengths around SHA-1's block and padding boundaries.
    messages = [bytes(range(n % 251, n % 251 + 1)) * n for n in (0, 1, 55, 56, 63, 64, 65, 119, 120, 200)]
    data = np.frombuffer(b"".join(messages), np.uint8)
    ends = np.cumsum([len(m) for m in messages])
    assert sha1_hash32(data, ends - [len(m) for m in messages], ends).tolist() == [
        struct.unpack("<I", hashlib.sha1(m).digest()[:4])[0] for m in messages]


def test_several_sources_of_different_formats_in_one_run(tmp_path):
    wiki = tmp_path / "wiki.xml"
    wiki.write_text(HEADER + page(1, "臺灣", "'''臺灣'''位於東亞。") + page(2, "共有", "两个来源都有这一句。")
                    + "</mediawiki>\n")
    news = tmp_path / "news.json"
    news.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in (
        {"title": "新聞", "desc": "", "content": "這是繁體新聞。"},
        {"title": "重复", "desc": "", "content": "两个来源都有这一句。"})) + "\n")
    manifest, documents = prepare_docs(
        tmp_path, [], f"--source=name=zhwiki,format=wiki,input={wiki},opencc=t2s",
        f"--source=name=news,format=jsonl,preset=news2016zh,input={news},opencc=none")
    by_source = sorted((d["source"], tuple(d["sentences"])) for d in documents.values())
    assert by_source == [("news", ("两个来源都有这一句。",)),  # in both sources: kept once (smallest id)
                         ("news", ("這是繁體新聞。",)),  # opencc=none for this source
                         ("zhwiki", ("台湾位于东亚。",))]
    assert manifest["counters"]["documents_filtered.duplicate"] == 1
    assert [s["name"] for s in manifest["config"]["sources"]] == ["zhwiki", "news"]


def test_a_text_source_is_tagged_with_its_name(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("第一句。\n第二句。\n\n另一篇。\n")
    _, documents = prepare_docs(tmp_path, [], f"--source=name=mybooks,format=text,input={corpus}")
    assert {d["source"] for d in documents.values()} == {"mybooks"}
    assert sorted(tuple(d["sentences"]) for d in documents.values()) == [("另一篇。",), ("第一句。", "第二句。")]
