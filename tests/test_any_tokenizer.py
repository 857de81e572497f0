"""Any Hugging Face tokenizer (``--tokenizer``): word groups from character offsets, special tokens
from the tokenizer's declaration, ids above 65,535, hub ids through the cache.

Tokenizers are built here with the ``tokenizers`` library itself (a byte-level BPE trained on the
UD sentences or on the test corpus, BPE and WordLevel models given by hand), never by the code
under test; TFRecords are parsed by TensorFlow where it is installed.
"""
import hashlib
import json

import numpy as np
import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

from tests.test_hub import COMMIT, cache_repo
from tests.test_pipeline import DOCUMENTS, run_wwm
from wwm_core.errors import UsageError
from wwm_core.tokenization import HuggingFaceTokenizer, group_starts, tokenize_sentences
from wwm_core.vocab import Vocab

ROBERTA_SPECIAL = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
SENTENCES = [sentence for document in DOCUMENTS for sentence in document]


def byte_level_bpe(texts, *, vocab_size=600, post_processor=True) -> Tokenizer:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=ROBERTA_SPECIAL,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(texts * 20, trainer)
    if post_processor:
        tokenizer.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    return tokenizer


def save(tokenizer: Tokenizer, path) -> str:
    tokenizer.save(str(path))
    return str(path)


def groups(tokenizer: Tokenizer, sentence: str, words: list) -> list:
    """The tokens' texts per group, for a sentence and its words."""
    batch = tokenize_sentences(HuggingFaceTokenizer(tokenizer.to_str().encode()), [sentence])
    grouping = group_starts(batch, [len(sentence)], [[len(w) for w in words]])
    out = []
    for token, start, end, new in zip(batch.ids, batch.starts, batch.ends, grouping.group_start):
        if new:
            out.append([])
        out[-1].append(sentence[start:end])
    return out, grouping


def test_a_token_belongs_to_every_word_it_overlaps_and_words_sharing_a_token_are_one_group():
    # A BPE whose merges make 中国 one token: the words 中|国人 share it and become one group.
    vocab = {c: i for i, c in enumerate(["中", "国", "人", "民", "中国", "人民"])}
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[("中", "国"), ("人", "民")]))
    found, grouping = groups(tokenizer, "中国人民", ["中", "国人", "民"])
    assert found == [["中国", "人民"]], "中 and 国人 share 中国; 国人 and 民 share 人民"
    assert grouping.boundaries_overridden == 2
    found, grouping = groups(tokenizer, "中国人民", ["中国", "人民"])
    assert found == [["中国"], ["人民"]] and grouping.boundaries_overridden == 0


def test_byte_level_pieces_of_one_character_stay_in_its_word():
    # A byte-level BPE that knows few Chinese characters splits the others into byte pieces, each
    # with the offsets of the whole character.
    tokenizer = byte_level_bpe(["hello world"], vocab_size=300)
    sentence = "你好 world"
    batch = tokenize_sentences(HuggingFaceTokenizer(tokenizer.to_str().encode()), [sentence])
    assert len(batch.ids) > len(sentence.split()) + 2, "characters split into bytes"
    found, _ = groups(tokenizer, sentence, ["你好", " ", "world"])
    assert ["".join(dict.fromkeys(g)) for g in found] == ["你好", "world"]


def test_special_tokens_come_from_the_tokenizers_declaration(tmp_path):
    tokenizer = byte_level_bpe(SENTENCES)
    vocab = Vocab.from_tokenizer_json(tokenizer.to_str().encode())
    assert vocab.special_tokens() == {"cls": {"token": "<s>", "id": 0}, "sep": {"token": "</s>", "id": 2},
                                      "mask": {"token": "<mask>", "id": 4}, "pad": {"token": "<pad>", "id": 1},
                                      "unk": {"token": "<unk>", "id": 3}}
    config = json.dumps({"cls_token": "<unk>", "mask_token": {"content": "<pad>"}}).encode()
    declared = Vocab.from_tokenizer_json(tokenizer.to_str().encode(), config=config)
    assert declared.special_token("cls") == "<unk>" and declared.special_token("mask") == "<pad>"
    # Nothing declared: one line naming the flag.
    bare = Tokenizer(models.WordLevel({"中": 0, "国": 1, "[UNK]": 2}, unk_token="[UNK]"))
    with pytest.raises(ValueError, match=r"declares no cls, sep, mask, pad token: name it with --special_tokens"):
        Vocab.from_tokenizer_json(bare.to_str().encode())


def test_wwm_run_with_a_byte_level_bpe_tokenizer(tmp_path):
    path = save(byte_level_bpe(SENTENCES), tmp_path / "tokenizer.json")
    manifest = run_wwm(tmp_path, f"--tokenizer={path}", "--output_format=both", "--recipe=roberta-wwm-ext",
                       "--sentence_task=none", "--max_seq_length=64")
    out = tmp_path / "out"
    assert manifest["vocab_file"] == "tokenizer.json" and (out / "tokenizer.json").read_bytes() == open(path, "rb").read()
    assert manifest["tokenizer"] == {"path": path, "file": "tokenizer.json",
                                     "sha256": hashlib.sha256(open(path, "rb").read()).hexdigest()}
    assert manifest["special_tokens"]["mask"] == {"token": "<mask>", "id": 4}
    assert manifest["vocab_size"] == Tokenizer.from_file(path).get_vocab_size()
    from wwm_cli.inspect import iter_instances

    library = Tokenizer.from_file(path)
    text = "".join("".join(document) for document in DOCUMENTS)
    seen = 0
    for _, instance, vocab in iter_instances(str(out), prefer_parquet=True):
        ids = list(instance.input_ids)
        for position, original in zip(instance.masked_positions, instance.masked_ids):
            ids[position] = original
        assert ids[0] == 0 and ids[-1] == 2, "<s> ... </s>"
        assert library.decode(ids[1:-1]) in text, "the instance is a stretch of one document's text"
        words = np.array(instance.word_ids)
        masked = np.zeros(len(words), bool)
        masked[instance.masked_positions] = True
        for word in np.unique(words[words > 0]):
            assert masked[words == word].all() or not masked[words == word].any()
        seen += 1
    assert seen == manifest["num_instances"] > 0


def high_id_tokenizer(texts) -> Tokenizer:
    """A WordLevel tokenizer of one token per character whose characters all have ids above
    70,000 (a vocabulary of 70,000 filler tokens first), BERT's special tokens declared by a
    template post-processor."""
    characters = sorted({c for text in texts for c in text if not c.isspace()})
    names = [f"[unused{i}]" for i in range(70_000)] + ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + characters
    tokenizer = Tokenizer(models.WordLevel({t: i for i, t in enumerate(names)}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                                       pre_tokenizers.Split(
                                                           pattern=__import__("tokenizers").Regex("."),
                                                           behavior="isolated")])
    tokenizer.add_special_tokens(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 70_002), ("[SEP]", 70_003)])
    return tokenizer


def test_ids_above_65535_are_stored_and_read_back(tmp_path):
    tokenizer = high_id_tokenizer(SENTENCES)
    path = save(tokenizer, tmp_path / "tokenizer.json")
    manifest = run_wwm(tmp_path, f"--tokenizer={path}", "--output_format=both")
    assert manifest["vocab_size"] > 70_000 and manifest["special_tokens"]["mask"]["id"] == 70_004
    from wwm_cli.inspect import iter_instances

    text = "".join("".join(document) for document in DOCUMENTS)
    for kind in (False, True):
        for _, instance, _ in iter_instances(str(tmp_path / "out"), prefer_parquet=kind):
            ids = list(instance.input_ids)
            for position, original in zip(instance.masked_positions, instance.masked_ids):
                ids[position] = original
            assert min(ids) >= 70_000
            segments = "".join(tokenizer.id_to_token(i) for i in ids[1:-1]).split("[SEP]")  # NSP: A and B
            assert all(segment in text.replace(" ", "") for segment in segments)
    tf = pytest.importorskip("tensorflow")
    from tests.conftest import google_run_pretraining_features

    spec = google_run_pretraining_features(128, manifest["max_predictions_per_seq"])
    files = [str(tmp_path / "out" / name) for name in manifest["files"]]
    for record in tf.data.TFRecordDataset(files):
        parsed = tf.io.parse_single_example(record, spec)
        length, count = int(parsed["input_mask"].numpy().sum()), int(parsed["masked_lm_weights"].numpy().sum())
        ids = parsed["input_ids"].numpy()[:length]
        ids[parsed["masked_lm_positions"].numpy()[:count]] = parsed["masked_lm_ids"].numpy()[:count]
        assert ids.min() >= 70_000, "the original ids, read by TensorFlow"


def test_a_hub_tokenizer_through_the_cache(tmp_path, offline_hub):
    tokenizer = byte_level_bpe(SENTENCES, post_processor=False)  # roles from tokenizer_config.json only
    config = {"bos_token": "<s>", "eos_token": "</s>", "mask_token": "<mask>", "pad_token": "<pad>"}
    cache_repo(offline_hub, "someone/chinese-bpe", {"tokenizer.json": tokenizer.to_str().encode(),
                                                     "tokenizer_config.json": json.dumps(config).encode()})
    manifest = run_wwm(tmp_path, "--tokenizer=someone/chinese-bpe")
    assert manifest["tokenizer"]["hub_id"] == "someone/chinese-bpe" and manifest["tokenizer"]["commit"] == COMMIT
    assert manifest["special_tokens"]["cls"]["token"] == "<s>" and manifest["num_instances"] > 0


def test_tokenizer_flags_are_checked_before_any_work(tmp_path):
    bare = Tokenizer(models.WordLevel({c: i for i, c in enumerate(["[UNK]", "<s>", "</s>", "<m>", "<p>"]
                                                                  + sorted(set("".join(SENTENCES))))},
                                      unk_token="[UNK]"))
    bare.pre_tokenizer = pre_tokenizers.Split(pattern=__import__("tokenizers").Regex("."), behavior="isolated")
    path = save(bare, tmp_path / "bare.json")
    with pytest.raises(UsageError, match="--special_tokens"):
        run_wwm(tmp_path, f"--tokenizer={path}")
    manifest = run_wwm(tmp_path, f"--tokenizer={path}", "--special_tokens=cls=<s>,sep=</s>,mask=<m>,pad=<p>",
                       name="named")
    assert manifest["special_tokens"]["mask"] == {"token": "<m>", "id": 3}
    with pytest.raises(UsageError, match="not both"):
        run_wwm(tmp_path, f"--tokenizer={path}", vocab=path, name="both")
