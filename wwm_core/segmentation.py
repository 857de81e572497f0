"""Word segmenters: LTP (the recipe's: its legacy perceptron, or its neural models), jieba, or none.

Each segmenter maps a batch of sentences to, per sentence, the character length of each word. The
lengths must add up to the sentence's length; the caller checks that and counts any mismatch.
A segmenter's *identity* (backend, model and dictionary hashes, library version) names what it
would produce, so cached word boundaries are reused only by the very same segmenter.
"""
import dataclasses
import hashlib
import importlib.metadata
import json
import os
import subprocess
import sys

SEGMENTERS = ("ltp", "jieba", "char")

LTP_HELP = (
    "The ltp segmenter needs an LTP model: pass --ltp_model PATH (local or gs://): a perceptron CWS model "
    "file saved by ltp_extension (CWSModel.save), a legacy LTP release folder (config.json naming "
    "cws_model.bin, or just cws_model.bin), or a neural LTP model folder (needs the ltp-neural extra). "
    "LTP's released perceptron is the Hugging Face hub's LTP/legacy (--ltp_model LTP/legacy, fetched into the "
    "hub's cache; offline, copy a cache that holds it); or train a perceptron from segmented text with "
    "`wwm segmenter train --train FILE --output DIR`, or pick --segmenter jieba (ships its dictionary) "
    "or --segmenter char (no word grouping)."
)
NEURAL_LTP_HELP = ("neural LTP models need the `ltp` package with PyTorch: pip install 'wwm-data[ltp-neural]' "
                   "(or pip install ltp torch). The legacy perceptron models need only ltp-extension.")
# The file names a legacy LTP release folder may hold its CWS model under.
LTP_CWS_FILE_NAMES = ("cws_model.bin", "cws.model", "cws_model")
LTP_CONFIG_FILE = "config.json"
# The frequency LTP's own add_words gives user words: enough for its hook to prefer them.
LTP_DEFAULT_USER_WORD_FREQUENCY = 2


class SegmenterError(ValueError):
    pass


class CharSegmenter:
    """No word grouping: every token is masked on its own (plain BERT masking)."""

    name = "char"

    def segment(self, sentences):
        return [None] * len(sentences)


class JiebaSegmenter:
    name = "jieba"

    def __init__(self, user_words=()):
        import logging

        import jieba

        jieba.setLogLevel(logging.WARNING)  # it logs its dictionary loading at DEBUG on every worker
        self._tokenizer = jieba.Tokenizer()
        self._tokenizer.initialize()
        for user_word in user_words:
            # frequency None lets jieba pick one high enough for the word to be cut out whole.
            self._tokenizer.add_word(user_word.word, freq=user_word.frequency)

    def segment(self, sentences):
        return [list(map(len, self._tokenizer.cut(sentence, HMM=True))) for sentence in sentences]


class LtpSegmenter:
    """LTP's legacy perceptron (Rust, ``ltp_extension``); user words are merged in afterwards by
    LTP's own Hook, as ``ltp.LTP.add_words`` does for legacy models."""

    name = "ltp"

    def __init__(self, model_file: str, user_words=()):
        from ltp_extension.algorithms import Hook
        from ltp_extension.perceptron import CWSModel

        self._model = CWSModel.load(model_file)
        self._hook = Hook() if user_words else None
        for user_word in user_words:
            frequency = LTP_DEFAULT_USER_WORD_FREQUENCY if user_word.frequency is None else user_word.frequency
            self._hook.add_word(user_word.word, frequency)

    def segment(self, sentences):
        # Beam already runs one worker per core; LTP's own thread pool would oversubscribe them.
        batches = self._model.batch_predict(list(sentences), parallelism=False)
        if self._hook is not None:
            # The hook needs words that spell the sentence (it raises otherwise, e.g. for leading
            # spaces); those that do not are left to the caller's mismatch rule.
            batches = [self._hook.hook(sentence, words) if sum(map(len, words)) == len(sentence) else words
                       for sentence, words in zip(sentences, batches)]
        return [list(map(len, words)) for words in batches]


def lengths_on_text(sentence: str, words) -> list:
    """Word lengths measured on ``sentence`` itself, for segmenters whose words leave out the
    spaces between them (LTP's neural models): skipped spaces count with the word after them,
    trailing ones with the last word. None when the words do not spell the sentence."""
    ends, position = [], 0
    for word in words:
        while sentence[position:position + len(word)] != word and sentence[position:position + 1].isspace():
            position += 1
        if not word or sentence[position:position + len(word)] != word:
            return None
        position += len(word)
        ends.append(position)
    if sentence[position:].strip() or not ends:
        return None
    ends[-1] = len(sentence)
    return [end - start for start, end in zip([0] + ends[:-1], ends)]


class NeuralLtpSegmenter:
    """LTP's neural models (``ltp`` with PyTorch), from a local model folder with config.json."""

    name = "ltp"

    def __init__(self, folder: str, user_words=()):
        try:
            import torch  # noqa: F401 - checked here so the error names the missing piece
            from ltp import LTP
        except ImportError as error:
            raise SegmenterError(f"{folder} holds a neural LTP model, but {error}. {NEURAL_LTP_HELP}") from error
        self._ltp = LTP(folder)
        for user_word in user_words:
            self._ltp.add_word(user_word.word, user_word.frequency or LTP_DEFAULT_USER_WORD_FREQUENCY)

    def segment(self, sentences):
        words = self._ltp.pipeline(list(sentences), tasks=["cws"]).cws
        return [lengths_on_text(sentence, sentence_words) or [1] * len(sentence)
                for sentence, sentence_words in zip(sentences, words)]


@dataclasses.dataclass(frozen=True)
class LtpModel:
    kind: str  # "perceptron" or "neural"
    path: str  # the perceptron model file, or the neural model folder
    files: tuple  # every file the model is made of: what its identity hashes


def resolve_ltp_model(path: str) -> LtpModel:
    """What a local ``--ltp_model`` path holds: a perceptron model file, a legacy LTP release
    folder (config.json with ``"nerual": false`` naming its cws model, or a bare cws_model.bin), or
    a neural LTP model folder (config.json with ``"nerual": true``; LTP spells it so)."""
    if os.path.isfile(path):
        return LtpModel("perceptron", path, (path,))
    if not os.path.isdir(path):
        raise SegmenterError(f"--ltp_model {path!r} does not exist. {LTP_HELP}")
    config_file = os.path.join(path, LTP_CONFIG_FILE)
    if os.path.isfile(config_file):
        try:
            with open(config_file, encoding="utf-8") as handle:
                config = json.load(handle)
        except (OSError, ValueError) as error:
            raise SegmenterError(f"--ltp_model {path!r}: unreadable config.json: {error}") from error
        if config.get("nerual", config.get("neural")):
            files = tuple(sorted(os.path.join(path, name) for name in os.listdir(path)
                                 if os.path.isfile(os.path.join(path, name))))
            return LtpModel("neural", path, files)
        cws_name = (config.get("tasks") or {}).get("cws")
        if not cws_name:
            raise SegmenterError(f"--ltp_model {path!r}: config.json names no cws model under \"tasks\". {LTP_HELP}")
        cws_file = os.path.join(path, cws_name)
        if not os.path.isfile(cws_file):
            raise SegmenterError(f"--ltp_model {path!r}: config.json names {cws_name}, which is not in the folder")
        return LtpModel("perceptron", cws_file, (cws_file,))
    for name in LTP_CWS_FILE_NAMES:
        candidate = os.path.join(path, name)
        if os.path.isfile(candidate):
            return LtpModel("perceptron", candidate, (candidate,))
    raise SegmenterError(f"--ltp_model {path!r} is a folder without config.json or cws_model.bin. {LTP_HELP}")


# Loads a perceptron model and segments one sentence, in a process of its own: ltp_extension's
# Rust loader panics on a truncated or bit-flipped file, and that panic aborts the whole process
# (SIGABRT; pyo3 cannot turn it into an exception), which would take the command with it.
_PROBE = """
import sys
from ltp_extension.perceptron import CWSModel
CWSModel.load(sys.argv[1]).batch_predict(["使用语言模型来预测下一个词。"], parallelism=False)
"""
PROBE_TIMEOUT_S = 600


def probe_ltp_model(path: str):
    """None when the perceptron model file at ``path`` loads and segments, else why not, in one
    line. Costs one Python start and one model load (about a second for a small model)."""
    try:
        probe = subprocess.run([sys.executable, "-c", _PROBE, path], capture_output=True, text=True,
                               timeout=PROBE_TIMEOUT_S, env={**os.environ, "RUST_BACKTRACE": "0"})
    except subprocess.TimeoutExpired:
        return f"loading it took over {PROBE_TIMEOUT_S} s"
    if probe.returncode == 0:
        return None
    lines = [line.strip() for line in probe.stderr.splitlines() if line.strip()]
    panic = next((lines[i + 1] for i, line in enumerate(lines[:-1]) if "panicked at" in line), None)
    last = panic or (lines[-1] if lines else f"exit status {probe.returncode}")
    crashed = "crashed" if probe.returncode < 0 or probe.returncode == 134 else "failed"
    return f"LTP's loader {crashed} on it ({last[:300]}): the file is truncated or damaged"


def load_segmenter(kind: str, *, ltp_model: str = None, user_words=()):
    """``ltp_model`` must already be local (the pipeline stages gs:// models first)."""
    if kind == "char":
        if user_words:
            raise SegmenterError("--user_dict needs a segmenter: --segmenter ltp or jieba, not char")
        return CharSegmenter()
    if kind == "jieba":
        return JiebaSegmenter(user_words)
    if kind == "ltp":
        if not ltp_model:
            raise SegmenterError(f"--segmenter ltp without --ltp_model. {LTP_HELP}")
        model = resolve_ltp_model(ltp_model)
        if model.kind == "neural":
            return NeuralLtpSegmenter(model.path, user_words)
        try:
            return LtpSegmenter(model.path, user_words)
        except Exception as error:  # the Rust loader raises plain exceptions for bad files
            raise SegmenterError(f"could not load LTP model {model.path!r}: {error}. {LTP_HELP}") from error
    raise SegmenterError(f"unknown segmenter {kind!r}; choose one of {', '.join(SEGMENTERS)}")


def _sha256_of_files(paths) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(os.path.basename(path).encode() + b"\0")
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def segmenter_identity(kind: str, *, ltp_model: str = None, user_dict_bytes: bytes = None) -> dict:
    """What decides a segmenter's output: backend, library version, model and dictionary hashes."""
    identity = {"backend": kind}
    if kind == "jieba":
        identity["library"] = f"jieba {_version('jieba')}"  # its dictionary ships with the version
    if kind == "ltp":
        model = resolve_ltp_model(ltp_model)
        identity["model_kind"] = model.kind
        identity["library"] = (f"ltp {_version('ltp')}" if model.kind == "neural"
                               else f"ltp-extension {_version('ltp-extension')}")
        identity["model_sha256"] = _sha256_of_files(model.files)
    identity["user_dict_sha256"] = hashlib.sha256(user_dict_bytes).hexdigest() if user_dict_bytes else None
    return identity


def identity_key(identity: dict) -> str:
    """A short, stable name for a segmenter identity (a folder name of the segmentation cache)."""
    canonical = json.dumps(identity, sort_keys=True, separators=(",", ":")).encode()
    return f"{identity['backend']}-{hashlib.sha256(canonical).hexdigest()[:16]}"

