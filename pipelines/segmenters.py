"""The segmenter a command was asked for: loaded on each worker, checked once at launch, named by
its identity (what keys the segmentation cache)."""
import dataclasses
import functools

from wwm_core.errors import UsageError
from pipelines.io_utils import read_bytes, stage_locally
from wwm_core.cws import CorpusFormatError, read_user_dict
from wwm_core.segmentation import (SEGMENTERS, SegmenterError, identity_key, load_segmenter, probe_ltp_model,
                                   resolve_ltp_model, segmenter_identity)


@dataclasses.dataclass(frozen=True)
class SegmenterChoice:
    """Pickled onto workers with the user dictionary's bytes and the launch-time identity: a worker
    segments with exactly the dictionary the launcher hashed, and refuses a model whose files
    changed since (their hashes name the cache the job writes or reads)."""
    kind: str  # one of SEGMENTERS
    ltp_model: str = None  # local or gs://: a model file or folder
    user_dict: str = None  # local or gs://

    def __post_init__(self):
        if self.kind not in SEGMENTERS:
            raise ValueError(f"--segmenter must be one of {SEGMENTERS}")

    @functools.cached_property
    def _user_dict_bytes(self):
        return read_bytes(self.user_dict) if self.user_dict else None

    @functools.cached_property
    def _local_model(self):
        return stage_locally(self.ltp_model) if self.kind == "ltp" and self.ltp_model else None

    @functools.cached_property
    def _identity(self) -> dict:
        return segmenter_identity(self.kind, ltp_model=self._local_model, user_dict_bytes=self._user_dict_bytes)

    def load(self):
        """The segmenter itself (on a worker: downloads a gs:// model once per process)."""
        launched = self.__dict__.get("_launch_identity")
        if launched is not None and launched != self._identity:
            raise SegmenterError(f"the segmenter changed since the job was launched ({launched} there, "
                                 f"{self._identity} on this worker): was the model file replaced?")
        words = read_user_dict(self._user_dict_bytes.decode("utf-8")) if self._user_dict_bytes else ()
        return load_segmenter(self.kind, ltp_model=self._local_model, user_words=words)

    def identity(self) -> dict:
        return self._identity

    def identity_key(self) -> str:
        return identity_key(self._identity)

    def __getstate__(self):
        # Not the staged model (a local path of the launcher) but what identifies it.
        return {"kind": self.kind, "ltp_model": self.ltp_model, "user_dict": self.user_dict,
                "_user_dict_bytes": self._user_dict_bytes, "_launch_identity": self._identity}

    def __setstate__(self, state):
        self.__dict__.update(state)


def add_segmenter_flags(parser, *, default: str) -> None:
    """--segmenter, --ltp_model, --user_dict: for every command that segments."""
    add = parser.add_argument
    add("--segmenter", choices=SEGMENTERS, default=default)
    add("--ltp_model", help="LTP model: a perceptron CWS model file, a legacy release folder or a neural "
        "model folder (local or gs://); `wwm segmenter train` makes one")
    add("--user_dict", help="words to keep whole, one a line ('word [frequency] [tag]', jieba's format); for ltp "
        "and jieba; local or gs://")


def segmenter_choice(config) -> SegmenterChoice:
    """The segmenter a RunConfig names."""
    return SegmenterChoice(config.segmenter, config.ltp_model, config.user_dict)


def check_segmenter(choice: SegmenterChoice):
    """Loads the segmenter once at launch, so a missing or bad model or dictionary fails before any
    worker starts. Returns it (commands that segment locally use it). An LTP perceptron model is
    first loaded in a child process: a damaged file crashes LTP's loader, which would abort this
    process; a worker loads only the very bytes checked here (their hash is the identity)."""
    try:
        if choice.kind == "ltp" and choice.ltp_model:
            model = resolve_ltp_model(choice._local_model)
            problem = probe_ltp_model(model.path) if model.kind == "perceptron" else None
            if problem:
                raise UsageError(f"could not load LTP model {choice.ltp_model!r} ({model.path}): {problem}")
        return choice.load()
    except (SegmenterError, CorpusFormatError, OSError, UnicodeDecodeError) as error:
        raise UsageError(str(error)) from error
