"""Word segmenters: LTP's legacy perceptron (the recipe's), jieba, or none (``char``).

Each segmenter maps a batch of sentences to, per sentence, the character length of each word. The
lengths must add up to the sentence's length; the caller checks that and counts any mismatch.
"""
import os

SEGMENTERS = ("ltp", "jieba", "char")

LTP_HELP = (
    "The ltp segmenter needs an LTP legacy perceptron CWS model: pass --ltp_model PATH, a model file "
    "saved by ltp_extension.perceptron (CWSModel.save) or a legacy LTP release folder holding "
    "cws_model.bin (local or gs://). LTP's released legacy models cannot be downloaded by this tool; "
    "train one from segmented text with ltp_extension.perceptron.CWSTrainer (see README, 'LTP models'), "
    "or pick --segmenter jieba (ships its dictionary) or --segmenter char (no word grouping)."
)


class SegmenterError(ValueError):
    pass


class CharSegmenter:
    """No word grouping: every token is masked on its own (plain BERT masking)."""

    name = "char"

    def segment(self, sentences):
        return [None] * len(sentences)


class JiebaSegmenter:
    name = "jieba"

    def __init__(self):
        import logging

        import jieba

        jieba.setLogLevel(logging.WARNING)  # it logs its dictionary loading at DEBUG on every worker
        self._tokenizer = jieba.Tokenizer()
        self._tokenizer.initialize()

    def segment(self, sentences):
        return [list(map(len, self._tokenizer.cut(sentence, HMM=True))) for sentence in sentences]


class LtpSegmenter:
    name = "ltp"

    def __init__(self, model_file: str):
        from ltp_extension.perceptron import CWSModel

        self._model = CWSModel.load(model_file)

    def segment(self, sentences):
        # Beam already runs one worker per core; LTP's own thread pool would oversubscribe them.
        batches = self._model.batch_predict(list(sentences), parallelism=False)
        return [list(map(len, words)) for words in batches]


def find_ltp_model_file(path: str) -> str:
    """The perceptron model file inside ``path`` (a file, or an LTP legacy release folder)."""
    if os.path.isfile(path):
        return path
    if os.path.isdir(path):
        for name in ("cws_model.bin", "cws.model", "cws_model"):
            candidate = os.path.join(path, name)
            if os.path.isfile(candidate):
                return candidate
        raise SegmenterError(f"--ltp_model {path!r} is a folder without cws_model.bin. {LTP_HELP}")
    raise SegmenterError(f"--ltp_model {path!r} does not exist. {LTP_HELP}")


def load_segmenter(kind: str, *, ltp_model_file: str = None):
    """``ltp_model_file`` must already be local (the pipeline stages gs:// models first)."""
    if kind == "char":
        return CharSegmenter()
    if kind == "jieba":
        return JiebaSegmenter()
    if kind == "ltp":
        if not ltp_model_file:
            raise SegmenterError(f"--segmenter ltp without --ltp_model. {LTP_HELP}")
        model_file = find_ltp_model_file(ltp_model_file)
        try:
            return LtpSegmenter(model_file)
        except Exception as error:  # the Rust loader raises plain exceptions for bad files
            raise SegmenterError(f"could not load LTP model {model_file!r}: {error}. {LTP_HELP}") from error
    raise SegmenterError(f"unknown segmenter {kind!r}; choose one of {', '.join(SEGMENTERS)}")
