import base64
import importlib
import pathlib
import sys

import pytest

SHARED = pathlib.Path(__file__).resolve().parents[2] / "shared"
SHARED_DATA = SHARED / "data"
GOOGLE_BERT = SHARED / "tools" / "google_bert"
BERT_VOCAB = SHARED_DATA / "bert_vocab" / "vocab.txt"
FIXTURES = pathlib.Path(__file__).parent / "fixtures"
UD = "ud_chinese_gsdsimp/zh_gsdsimp-ud-{}.conllu"


def shared_file(relative: str) -> pathlib.Path:
    """A file of ../shared/data, or a clean skip where a fresh clone has no ../shared."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"{path} is absent (../shared is not part of a fresh clone)")
    return path


def google_bert(name: str):
    """A module of Google's BERT code in ../shared/tools/google_bert (``tokenization`` or
    ``create_pretraining_data``), imported from there unchanged: the independent reference. Skips
    cleanly where the folder or TensorFlow (which Google's code imports) is absent."""
    path = GOOGLE_BERT / f"{name}.py"
    if not path.exists():
        pytest.skip(f"{path} is absent (../shared is not part of a fresh clone)")
    pytest.importorskip("tensorflow")
    if name not in sys.modules:
        # create_pretraining_data.py does `import tokenization`: both load from Google's folder.
        sys.path.insert(0, str(GOOGLE_BERT))
        try:
            importlib.import_module(name)
        finally:
            sys.path.remove(str(GOOGLE_BERT))
    module = sys.modules[name]
    assert pathlib.Path(module.__file__).resolve() == path.resolve(), f"another {name} module was imported first"
    return module


def google_run_pretraining_features(max_seq_length: int, max_predictions_per_seq: int) -> dict:
    """google-research/bert run_pretraining.py, input_fn_builder's name_to_features, written out by
    hand: the parse spec our TFRecords must satisfy, independent of our schema."""
    import tensorflow as tf

    return {
        "input_ids": tf.io.FixedLenFeature([max_seq_length], tf.int64),
        "input_mask": tf.io.FixedLenFeature([max_seq_length], tf.int64),
        "segment_ids": tf.io.FixedLenFeature([max_seq_length], tf.int64),
        "masked_lm_positions": tf.io.FixedLenFeature([max_predictions_per_seq], tf.int64),
        "masked_lm_ids": tf.io.FixedLenFeature([max_predictions_per_seq], tf.int64),
        "masked_lm_weights": tf.io.FixedLenFeature([max_predictions_per_seq], tf.float32),
        "next_sentence_labels": tf.io.FixedLenFeature([1], tf.int64),
    }


def ud_sentences(split: str) -> list:
    """The raw sentences (``# text =``) of the UD Chinese GSDSimp dev or test file."""
    text = shared_file(UD.format(split)).read_text(encoding="utf-8")
    return [line[len("# text = "):].strip() for line in text.splitlines() if line.startswith("# text = ")]


def ud_corpus_file(path, *, per_document: int) -> tuple:
    """The UD dev and test sentences as a text corpus (documents of ``per_document`` sentences):
    (path, sentences)."""
    sentences = ud_sentences("dev") + ud_sentences("test")
    path.write_text("\n\n".join("\n".join(sentences[i:i + per_document])
                                 for i in range(0, len(sentences), per_document)) + "\n", encoding="utf-8")
    return path, sentences


@pytest.fixture(scope="session")
def bert_vocab_path():
    return shared_file("bert_vocab/vocab.txt")


@pytest.fixture(scope="session")
def bert_vocab(bert_vocab_path):
    from wwm_core.vocab import Vocab

    return Vocab.from_bytes(bert_vocab_path.read_bytes())


@pytest.fixture(scope="session")
def bundled_vocab():
    from wwm_core.vocab import Vocab, bundled_vocab_bytes

    return Vocab.from_bytes(bundled_vocab_bytes())


@pytest.fixture(scope="session")
def google_tokenizer(bert_vocab_path):
    """Google's FullTokenizer (lowercasing) on Google's vocabulary."""
    return google_bert("tokenization").FullTokenizer(str(bert_vocab_path), do_lower_case=True)


@pytest.fixture()
def offline_hub(tmp_path, monkeypatch):
    """huggingface_hub offline, with an empty cache of this test's own (a folder to fill, laid out
    as the hub client lays it out). Set on the library's constants, which it reads from the
    environment only once, when first imported."""
    import huggingface_hub.constants

    cache = tmp_path / "hub-cache"
    cache.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


def crc32c_bitwise(data: bytes) -> int:
    """CRC-32C (Castagnoli: reflected polynomial 0x82F63B78, initial and final XOR 0xFFFFFFFF), one
    bit at a time, as RFC 3720 (iSCSI) defines it: a reference independent of google_crc32c."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def crc32c_as_gcs_reports_it(data: bytes) -> str:
    """GCS's (and the manifest's) encoding of a CRC-32C: base64 of the big-endian value."""
    return base64.b64encode(crc32c_bitwise(data).to_bytes(4, "big")).decode()
