"""``wwm tokenizer train`` on prepared documents, its audit, and the tokenizer in ``wwm run`` and
``wwm report``. The audit's figures are checked against plain computations with the ``tokenizers``
library and the vocabulary file."""
import json
import re

import pytest
from tokenizers import Tokenizer

from tests.conftest import shared_file, ud_sentences
from tests.test_pipeline import LOCAL
from wwm_cli import main
from wwm_cli.data import prepare, run

CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """The UD sentences and the zhwiki test dump through `wwm prepare`."""
    folder = tmp_path_factory.mktemp("tokenizer")
    sentences = ud_sentences("dev") + ud_sentences("test")
    corpus = folder / "ud.txt"
    corpus.write_text("\n\n".join("\n".join(sentences[i:i + 8]) for i in range(0, len(sentences), 8)) + "\n",
                      encoding="utf-8")
    prepare([f"--source=name=ud,format=text,input={corpus}",
             f"--source=name=wiki,format=wiki,input={shared_file('zhwiki_xml/zhwiki-test-pages.xml')}",
             f"--output={folder / 'prepared'}", "--progress=off", *LOCAL])
    return folder


def heldout_sentences(folder, manifest):
    from wwm_cli.tokenizer import documents, document_files, is_heldout

    return [s for doc_id, sentences in documents(document_files([str(folder / "prepared")]))
            if is_heldout(doc_id, manifest["config"]["heldout_share"]) for s in sentences]


def test_byte_level_bpe_trained_and_audited(prepared, capsys):
    out = prepared / "bpe"
    status = main(["tokenizer", "train", f"--input={prepared / 'prepared'}", f"--output={out}", "--vocab_size=3000",
                   "--heldout_share=0.1"])
    assert status == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "tokenizer" and manifest["vocab_size"] == 3000
    assert manifest["special_tokens"]["mask"] == {"token": "<mask>", "id": 4}
    audit = manifest["statistics"]["audit"]
    library = Tokenizer.from_file(str(out / "tokenizer.json"))
    sentences = heldout_sentences(prepared, manifest)
    assert audit["sentences"] == len(sentences) > 50
    tokens = sum(len(library.encode(s, add_special_tokens=False).ids) for s in sentences)
    assert audit["tokens"] == tokens and audit["unknown_tokens"] == 0, "byte-level: nothing is unknown"
    assert audit["characters_per_token"] == pytest.approx(sum(map(len, sentences)) / tokens)
    assert 1.0 < audit["characters_per_token"] < 3.0 and 0.8 < audit["cjk_covered_share"] < 1.0
    assert "Chinese characters covered" in capsys.readouterr().out
    # The folder is a --tokenizer for wwm run, and wwm report shows the audit.
    run_manifest = run([f"--input={prepared / 'prepared' / 'documents' / '*.parquet'}", "--input_format=parquet",
                        f"--output={prepared / 'run'}", f"--tokenizer={out}", "--segmenter=jieba", "--sentence_task=none",
                        "--pack_across_documents", "--pack_fill=tokens", "--max_seq_length=256", "--dupe_factor=1",
                        "--progress=off", *LOCAL])
    counters = run_manifest["counters"]
    assert run_manifest["tokenizer"]["sha256"] == manifest["vocab_sha256"] and counters["characters.cjk"] > 0
    assert counters["tokens.unknown"] == 0 and 0 < counters["characters.cjk_uncovered"] < counters["characters.cjk"]
    from wwm_cli.report import report_inputs
    from wwm_core import report_plots
    from wwm_core.report import report_sections

    for folder, expected in ((out, "audit on"), (prepared / "run", "what it made of this run's text")):
        sections = report_sections(report_inputs(str(folder)), report_plots)
        tokenizer = next(s for s in sections if s.title == "Tokenizer")
        assert any(expected in getattr(item, "title", "") for item in tokenizer.items)


def test_wordpiece_with_character_coverage(prepared):
    out = prepared / "wordpiece"
    main(["tokenizer", "train", f"--input={prepared / 'prepared'}", f"--output={out}", "--model=wordpiece",
          "--vocab_size=4000", "--character_coverage=0.99", "--heldout_share=0.1"])
    manifest = json.loads((out / "manifest.json").read_text())
    vocab = (out / "vocab.txt").read_text(encoding="utf-8").split("\n")[:-1]
    assert vocab[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] and len(vocab) == manifest["vocab_size"]
    # BERT's pre-tokenizer makes each Chinese character a word: it is covered exactly when the
    # vocabulary holds it, and [UNK] otherwise.
    sentences = heldout_sentences(prepared, manifest)
    characters = [c for s in sentences for c in CJK.findall(s)]
    known = set(vocab)
    audit = manifest["statistics"]["audit"]
    assert audit["cjk_characters"] == len(characters)
    assert audit["cjk_uncovered"] == sum(c not in known for c in characters) > 0, "coverage 0.99 leaves rare ones out"
    assert audit["unknown_tokens"] >= audit["cjk_uncovered"]
    # The vocab.txt is a BERT vocabulary for --vocab_file.
    from wwm_core.vocab import Vocab

    assert Vocab.from_bytes((out / "vocab.txt").read_bytes()).size == manifest["vocab_size"] <= 4000


def test_bad_settings_are_one_line(prepared, capsys):
    assert main(["tokenizer", "train", f"--input={prepared / 'nothing'}", f"--output={prepared / 'x'}"]) == 2
    assert "no prepared documents" in capsys.readouterr().err
    assert main(["tokenizer", "train", f"--input={prepared / 'prepared'}", f"--output={prepared / 'x'}",
                 "--vocab_size=10"]) == 2
