"""The segmenter a command was asked for: loaded on each worker, checked once at launch, named by
its identity (what keys the segmentation cache)."""
import dataclasses
import functools
import json
import logging
import os

from pipelines.io_utils import read_bytes, stage_locally
from wwm_core.config import SegmentationConfig
from wwm_core.cws import CorpusFormatError, read_user_dict
from wwm_core.errors import UsageError
from wwm_core.hub import hub_file, is_hub_id
from wwm_core.segmentation import (LTP_CONFIG_FILE, LTP_HELP, SEGMENTERS, SegmenterError, identity_key,
                                   load_segmenter, probe_ltp_model, resolve_ltp_model, segmenter_identity)

log = logging.getLogger("wwm")


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
    def local_model(self):
        if self.kind != "ltp" or not self.ltp_model:
            return None
        return released_ltp_model(self.ltp_model) if is_hub_id(self.ltp_model) else stage_locally(self.ltp_model)

    @functools.cached_property
    def _identity(self) -> dict:
        return segmenter_identity(self.kind, ltp_model=self.local_model, user_dict_bytes=self._user_dict_bytes)

    def load(self):
        """The segmenter itself (on a worker: downloads a gs:// model once per process)."""
        launched = self.__dict__.get("_launch_identity")
        if launched is not None and launched != self._identity:
            raise SegmenterError(f"the segmenter changed since the job was launched ({launched} there, "
                                 f"{self._identity} on this worker): was the model file replaced?")
        words = read_user_dict(self._user_dict_bytes.decode("utf-8")) if self._user_dict_bytes else ()
        return load_segmenter(self.kind, ltp_model=self.local_model, user_words=words)

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


def released_ltp_model(repo: str) -> str:
    """The local folder of an LTP model on the Hugging Face hub (``LTP/legacy``), fetched the way
    ``ltp.LTP(repo)`` fetches a legacy model: config.json, then the CWS model file it names (the
    POS and NER models are not needed to segment)."""
    try:
        config_path = hub_file(repo, LTP_CONFIG_FILE)
        with open(config_path, encoding="utf-8") as handle:
            config = json.load(handle)
        if config.get("nerual", config.get("neural")):
            raise SegmenterError(f"--ltp_model {repo} is a neural LTP model: download it (hf download {repo}) and "
                                 "pass its folder (needs the ltp-neural extra)")
        cws_file = (config.get("tasks") or {}).get("cws")
        if not cws_file:
            raise SegmenterError(f"--ltp_model {repo}: its config.json names no cws model")
        hub_file(repo, cws_file)
    except UsageError as error:
        raise SegmenterError(f"{error}. {LTP_HELP}") from error
    return os.path.dirname(config_path)


def segmenter_choice(segmentation) -> SegmenterChoice:
    """The segmenter a SegmentationConfig names."""
    return SegmenterChoice(segmentation.segmenter, segmentation.ltp_model, segmentation.user_dict)


def check_segmenter(choice: SegmenterChoice):
    """Loads the segmenter once at launch, so a missing or bad model or dictionary fails before any
    worker starts. Returns it (commands that segment locally use it). An LTP perceptron model is
    first loaded in a child process: a damaged file crashes LTP's loader, which would abort this
    process; a worker loads only the very bytes checked here (their hash is the identity)."""
    try:
        if choice.kind == "ltp" and choice.ltp_model:
            model = resolve_ltp_model(choice.local_model)
            problem = probe_ltp_model(model.path) if model.kind == "perceptron" else None
            if problem:
                raise UsageError(f"could not load LTP model {choice.ltp_model!r} ({model.path}): {problem}")
        return choice.load()
    except (SegmenterError, CorpusFormatError, OSError, UnicodeDecodeError) as error:
        raise UsageError(str(error)) from error


def checked_segmenter(config, *, recipe_default: bool):
    """(config, the checked SegmenterChoice). When the recipe's own segmenter (LTP/legacy) cannot
    be loaded and the user did not name one, jieba stands in, loudly: the run says so at its start
    and end, and the manifest records why (segmentation.fallback)."""
    choice = segmenter_choice(config.segmentation)
    try:
        check_segmenter(choice)
        return config, choice
    except UsageError as error:
        if not (recipe_default and config.segmentation.segmenter == "ltp"):
            raise
        reason = str(error).split(". ")[0]
    log.warning("WARNING: the recipe's segmenter (LTP, %s) is not available: %s. Segmenting with jieba instead; "
                "the word groups will differ from the recipe's. Pass --segmenter jieba to choose it, or get the "
                "model (hf download %s) to follow the recipe.", config.segmentation.ltp_model, reason,
                config.segmentation.ltp_model)
    segmentation = SegmentationConfig(segmenter="jieba", user_dict=config.segmentation.user_dict,
                                      cache=config.segmentation.cache,
                                      fallback=f"LTP {config.segmentation.ltp_model}: {reason}")
    config = dataclasses.replace(config, segmentation=segmentation)
    choice = segmenter_choice(segmentation)
    check_segmenter(choice)
    return config, choice
