import pathlib

import pytest

SHARED_DATA = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"
BERT_VOCAB = SHARED_DATA / "bert_vocab" / "vocab.txt"
FIXTURES = pathlib.Path(__file__).parent / "fixtures"


def shared_file(relative: str) -> pathlib.Path:
    """A file of ../shared/data, or a clean skip where a fresh clone has no ../shared."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"{path} is absent (../shared is not part of a fresh clone)")
    return path


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
