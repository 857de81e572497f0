"""The manifest: what a command wrote and how, written last so its presence means "complete".

One definition for every command's output:

    kind "instances"     a `wwm run` phase: TFRecord and/or Parquet shards of training instances
    kind "phases"        a `wwm run` with several lengths: one folder per phase, each its own manifest
    kind "documents"     `wwm prepare`: cleaned documents as Parquet
    kind "segmentation"  `wwm segment`: cached word boundaries of prepared documents

Every field any reader uses is an attribute of ``Manifest``; this module serializes, parses and
validates it. Readers (the trainer, ``wwm inspect``, ``wwm report``, the segmentation cache) call
``parse_manifest`` on the bytes they read; writers build a ``Manifest`` and call ``to_bytes``.
Version 1 manifests (``"format": "wwm-tfrecord/1"`` and its kin) are read and upgraded; anything
else is refused with a message that says what it is.
"""
import dataclasses
import datetime
import importlib.metadata
import json
import platform

from wwm_core.errors import UsageError

MANIFEST = "manifest.json"
# 3: Parquet instances have an ``instance_id`` column; instances may be made with any Hugging Face
# tokenizer (``tokenizer``, ``special_tokens``) and packed with their documents' starts; a
# ``tokenizer`` kind (`wwm tokenizer train`). Version 2 reads as it is (its Parquet has no instance
# ids: wwm_torch refuses to mask such data dynamically); version 1 is upgraded.
VERSION = 3
READABLE_VERSIONS = (2, 3)
KINDS = ("instances", "phases", "documents", "segmentation", "tokenizer")
TOOL = "wwm-data"
# The libraries whose versions decide the bytes of the output.
BYTE_DECIDING_LIBRARIES = ("apache-beam", "numpy", "numba", "tokenizers", "ltp-extension", "jieba", "opencc", "pyarrow",
                           "mwparserfromhell")
_V1_FORMATS = {"wwm-tfrecord/1": "instances", "wwm-documents/1": "documents", "wwm-segmentation/1": "segmentation"}


class ManifestError(UsageError):
    """A manifest that is missing, unreadable, of the wrong kind or incomplete."""


def library_versions(names=BYTE_DECIDING_LIBRARIES) -> dict:
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def tool_version() -> str:
    try:
        return importlib.metadata.version(TOOL)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


@dataclasses.dataclass(frozen=True)
class FileInfo:
    """One output file: its size and checksum (crc32c as GCS reports it: base64 of the big-endian
    CRC32C), and how many records it holds (instances or documents)."""
    bytes: int
    crc32c: str
    records: int = None


@dataclasses.dataclass(frozen=True)
class Manifest:
    kind: str
    command: tuple = ()  # the command line, as given
    started_at: str = None
    finished_at: str = None
    tool_version: str = None
    libraries: dict = dataclasses.field(default_factory=dict)
    inputs: tuple = ()  # {"path", "bytes"} per input file (a "sha256" where cheap)
    prepared: dict = None  # a run on prepared documents: {"manifest", "sources", "cleaning"} of that prepare
    config: dict = dataclasses.field(default_factory=dict)  # the configuration sections that applied
    # Data files, relative to the manifest's folder. For instances: the TFRecord shards (what
    # Google-schema readers take), with Parquet in parquet_files.
    files: tuple = ()
    parquet_files: tuple = None
    file_info: dict = dataclasses.field(default_factory=dict)  # name -> FileInfo, for every data file
    dead_letter_files: tuple = ()
    counters: dict = dataclasses.field(default_factory=dict)  # scalar counters by name
    histograms: dict = None  # {name: {lower edge: count}} (wwm_core.stats.Stats)
    texts: dict = None  # counted strings: {name: {text: count}} (the unknown tokens' texts)
    accounting: dict = dataclasses.field(default_factory=dict)
    # kind "instances"
    num_instances: int = None
    recipe: str = None
    max_seq_length: int = None
    max_predictions_per_seq: int = None
    sentence_task: str = None  # nsp | sop | none
    next_sentence_prediction: bool = None  # whether a sentence-level head trains on the labels (NSP or SOP)
    masking: str = None  # static | dynamic
    features: tuple = None  # the TFRecord feature names, in schema order
    vocab_file: str = None
    vocab_size: int = None
    vocab_sha256: str = None
    statistics: dict = dataclasses.field(default_factory=dict)  # masked and padding shares, ... (see docs/output.md)
    word_cache_folders: tuple = None
    tokenizer: dict = None  # --tokenizer: {"file", "sha256", "path" or "hub_id", "revision", "commit"}
    special_tokens: dict = None  # --tokenizer: {role: {"token", "id"}} for cls, sep, mask, pad (unk)
    similar_words: dict = None  # MacBERT: {"file" (token ids, .npz), "sha256", "source", "kind", "words", ...}
    # kind "phases": [{"max_seq_length", "manifest"}] in training order
    phases: tuple = None
    # kinds "documents" and "segmentation"
    num_documents: int = None
    identity: dict = None  # segmentation: the segmenter's identity

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ManifestError(f"manifest kind {self.kind!r} is not one of {', '.join(KINDS)}")

    def to_json(self) -> dict:
        values = {"manifest_version": VERSION}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is None:  # a field of another kind
                continue
            if field.name == "file_info":
                value = {name: dataclasses.asdict(info) for name, info in value.items()}
            values[field.name] = value
        return json.loads(json.dumps(values))

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_json(), ensure_ascii=False, indent=2).encode("utf-8")

    @property
    def all_files(self) -> tuple:
        return tuple(self.files) + tuple(self.parquet_files or ())

    def run_config(self):
        """The configuration tree the command ran with (``wwm_core.config.RunConfig``, the sections
        it used; the others take their defaults), or None for an upgraded version-1 manifest, whose
        configuration is kept as written under ``config["v1"]``."""
        if not self.config or "v1" in self.config:
            return None
        from wwm_core.config import RunConfig

        try:
            return RunConfig.from_json(self.config)
        except (TypeError, KeyError, UsageError) as error:
            raise ManifestError(f"the manifest's config cannot be read back: {error}") from error


def parse_manifest(data: bytes, *, path: str, kinds=KINDS) -> Manifest:
    """The manifest in ``data`` (read from ``path``, named in errors), of one of ``kinds``."""
    try:
        values = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ManifestError(f"{path} is not a manifest: not JSON ({error})") from error
    if not isinstance(values, dict):
        raise ManifestError(f"{path} is not a manifest: not a JSON object")
    if "format" in values and "manifest_version" not in values:
        values = _upgrade_v1(values, path)
    version = values.pop("manifest_version", None)
    if version not in READABLE_VERSIONS:
        raise ManifestError(f"{path} has manifest_version {version!r}; this wwm-data ({tool_version()}) reads "
                            f"versions {' and '.join(map(str, READABLE_VERSIONS))} (and upgrades version 1): use a "
                            "matching wwm-data, or make the data again")
    kind = values.get("kind")
    if kind not in kinds:
        hint = {"documents": " (the output of `wwm prepare`: run `wwm run --input_format parquet` on it first)",
                "phases": " (a run with several lengths: name one phase's manifest.json, e.g. seq128/manifest.json)"}
        raise ManifestError(f"{path} is a manifest of kind {kind!r}, not {' or '.join(kinds)}{hint.get(kind, '')}")
    known = {field.name for field in dataclasses.fields(Manifest)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ManifestError(f"{path} has fields this wwm-data does not know ({', '.join(unknown)}): written by a newer "
                            "version?")
    try:
        values["file_info"] = {name: FileInfo(**info) for name, info in values.get("file_info", {}).items()}
        _typed_stats(values)
        for name in ("command", "inputs", "files", "parquet_files", "dead_letter_files", "features",
                     "word_cache_folders", "phases"):
            if name in values:
                values[name] = tuple(values[name])
        manifest = Manifest(**values)
    except TypeError as error:
        raise ManifestError(f"{path} is not a valid manifest: {error}") from error
    _check_complete(manifest, path)
    return manifest


# Before the stats were typed, histograms and counted texts were counters of these names:
# ``hist.NAME.EDGE`` and ``unknown_token_text.TEXT``.
_LEGACY_HISTOGRAM, _LEGACY_TEXT = "hist.", "unknown_token_text."


def _typed_stats(values: dict) -> None:
    """A manifest written before its stats were typed: its histograms and texts, out of its counters."""
    counters = values.get("counters") or {}
    if not any(name.startswith((_LEGACY_HISTOGRAM, _LEGACY_TEXT)) for name in counters):
        return
    histograms, texts, scalars = {}, {}, {}
    for name, value in counters.items():
        if name.startswith(_LEGACY_HISTOGRAM):
            histogram, _, edge = name[len(_LEGACY_HISTOGRAM):].rpartition(".")
            histograms.setdefault(histogram, {})[edge] = value
        elif name.startswith(_LEGACY_TEXT):
            texts.setdefault("unknown_token", {})[name[len(_LEGACY_TEXT):]] = value
        else:
            scalars[name] = value
    values["counters"] = scalars
    values["histograms"] = {**histograms, **(values.get("histograms") or {})}
    values["texts"] = {**texts, **(values.get("texts") or {})}


_REQUIRED = {
    "instances": ("num_instances", "recipe", "max_seq_length", "max_predictions_per_seq", "sentence_task",
                  "next_sentence_prediction", "masking", "vocab_file", "vocab_size", "vocab_sha256"),
    "phases": ("phases",),
    "documents": ("num_documents",),
    "segmentation": ("identity", "num_documents"),
    "tokenizer": ("vocab_file", "vocab_size", "vocab_sha256"),
}


def _check_complete(manifest: Manifest, path: str) -> None:
    missing = [name for name in _REQUIRED[manifest.kind] if getattr(manifest, name) in (None, ())]
    if missing:
        raise ManifestError(f"{path} is incomplete: it lacks {', '.join(missing)}")


def _upgrade_v1(values: dict, path: str) -> dict:
    """A version-1 manifest in today's fields (no checksums: those files cannot be verified)."""
    kind = _V1_FORMATS.get(values.get("format"))
    if kind is None:
        raise ManifestError(f"{path} has format {values.get('format')!r}, which is not a wwm-data manifest")
    old = dict(values)
    upgraded = {"manifest_version": VERSION, "kind": kind, "files": old.get("files", []),
                "dead_letter_files": old.get("dead_letter_files", []), "counters": old.get("counters", {}),
                "accounting": old.get("accounting", {}), "config": {"v1": old.get("config", {})}}
    if kind == "instances":
        task = "nsp" if old.get("next_sentence_prediction") else "none"
        upgraded.update({name: old.get(name) for name in ("num_instances", "recipe", "max_seq_length",
                                                          "max_predictions_per_seq", "next_sentence_prediction",
                                                          "vocab_file", "vocab_size", "vocab_sha256")})
        upgraded.update(sentence_task=task, masking="static",
                        word_cache_folders=old.get("word_cache_folders", []))
    elif kind == "documents":
        upgraded["num_documents"] = old.get("num_documents")
    else:
        upgraded.update(identity=old.get("identity"), num_documents=old.get("num_documents"))
    return upgraded
