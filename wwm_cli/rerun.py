"""``wwm rerun MANIFEST --output DIR``: the run a manifest describes, made again, byte for byte.

A manifest holds everything that decides its output's bytes: the configuration tree (sources,
cleaning, segmentation, instances, output with its bucket size), the input files (path, size,
crc32c, source), the vocabulary's or tokenizer's sha256, and the versions of the libraries and of
this package. A rerun reads the same files (at their recorded paths, or moved: ``--input``, one
pattern per source, in order, matching the same files under the same names), checks each against
its recorded size and checksum and the vocabulary against its hash, and refuses in one line where
anything differs; other versions are refused too, unless ``--other_versions`` (then the bytes may
differ, and it says so). The runner is the rerun's own: it does not decide the bytes.
"""
import dataclasses
import logging

from pipelines.inputs import match_sources, matched_files
from pipelines.io_utils import input_root, normalized_pattern, path_under_root, read_bytes
from pipelines.output import file_checksum
from pipelines.segmenters import checked_segmenter
from pipelines.vocabulary import load_vocab
from wwm_cli import flags
from wwm_cli.data import clean_documents, make_instances, print_counters, print_run_summary
from wwm_cli.launch import launch
from wwm_core.config import RunConfig
from wwm_core.errors import UsageError
from wwm_core.manifest import MANIFEST, parse_manifest

log = logging.getLogger("wwm")


def rerun_parser():
    parser = flags.parser("wwm rerun", "Make the output a manifest describes again, byte for byte: the same "
                          "inputs (checked against their recorded sizes and checksums), configuration, bucket size and "
                          "versions, into another --output. Unknown flags go to Apache Beam (the runner does not "
                          "decide the bytes).")
    parser.add_argument("manifest", help="a `wwm run` or `wwm prepare` output's manifest.json (or its folder); local "
                        "or gs://")
    parser.add_argument("--output", required=True, help="the folder to write (local or gs://)")
    parser.add_argument("--input", action="append", default=[],
                        help="where the inputs are now, if they moved: a pattern per source, in the manifest's order, "
                        "that matches the same files under the same names (repeatable)")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier run in --output")
    parser.add_argument("--other_versions", action="store_true",
                        help="run with this machine's library and package versions where they differ from the "
                        "manifest's (the bytes may then differ; said at the start and the end)")
    flags.add_runner_flags(parser)
    return parser


def rerun(argv) -> dict:
    args, beam_args = rerun_parser().parse_known_args(argv)
    path = args.manifest if args.manifest.endswith(".json") else f"{args.manifest.rstrip('/')}/{MANIFEST}"
    try:
        manifest = parse_manifest(read_bytes(path), path=path, kinds=("phases", "instances", "documents"))
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error}") from error
    if manifest.kind == "instances" and manifest.config.get("instances", {}).get("phases", [None]).__len__() > 1:
        raise UsageError(f"{path} is one phase of a run of several: rerun the run's own manifest (one folder up)")
    other_versions = version_differences(manifest)
    if other_versions and not args.other_versions:
        raise UsageError(f"{path} was made with other versions ({other_versions}): a rerun with these would not be "
                         "byte for byte; install the manifest's versions, or pass --other_versions")
    if other_versions:
        log.warning("WARNING: rerunning with other versions than the manifest's (%s): the bytes may differ",
                    other_versions)
    config = RunConfig.from_json(manifest.config)
    config = dataclasses.replace(
        config, output=dataclasses.replace(config.output, path=args.output, overwrite=args.overwrite),
        runner=launch(beam_args, progress=args.progress))
    config, inputs = recorded_inputs(manifest, config, moved=args.input)
    command = ("wwm", "rerun", *argv)
    if manifest.kind == "documents":
        written = clean_documents(config, command=command, inputs=inputs)
        if written is not None:
            print(f"wrote {written.num_documents} documents in {len(written.files)} Parquet files")
            print_counters(written.counters)
    else:
        vocab, _ = load_vocab(config.instances)
        if manifest.kind == "phases":
            recorded_sha256 = parse_manifest(read_bytes(_phase_manifest(path, manifest)), path=path).vocab_sha256
        else:
            recorded_sha256 = manifest.vocab_sha256
        if recorded_sha256 and vocab.sha256 != recorded_sha256:
            raise UsageError(f"the vocabulary ({config.instances.tokenizer or config.instances.vocab_file or 'bundled'})"
                             f" is not the one {path} was made with (sha256 {vocab.sha256[:12]}..., recorded "
                             f"{recorded_sha256[:12]}...)")
        config, choice = checked_segmenter(config, recipe_default=False)
        written = make_instances(config, choice=choice, command=command, inputs=inputs)
        if written is not None:
            print_run_summary(written, config)
    if other_versions:
        print(f"WARNING: made with other versions than {path}'s ({other_versions}): the bytes may differ")
    return {} if written is None else written.to_json()


def _phase_manifest(path: str, manifest) -> str:
    return f"{path.rsplit('/', 1)[0]}/{manifest.phases[0]['manifest']}"


def version_differences(manifest) -> str:
    """The recorded versions (Python, the libraries that decide the bytes, this package's code) that
    this machine's differ from, in a phrase; "" when none do."""
    from pipelines.common import launcher_versions, version_differences as differences

    return "; ".join(f"{name} {wanted} in the manifest, {found or 'not installed'} here"
                     for name, wanted, found in differences(dict(manifest.libraries or {}), launcher_versions()))


def recorded_inputs(manifest, config, *, moved) -> tuple:
    """(config, InputFiles) of the manifest's input files, each checked against its recorded size
    and crc32c: at the recorded paths, or, with ``moved`` (a pattern per source), where those
    patterns find files of the same names under their root (the config's sources then read those
    patterns, so the documents' ids stay the same)."""
    recorded = [entry for entry in manifest.inputs if "dead_letter" not in entry]
    if not recorded:
        raise UsageError("the manifest lists no input files")
    if moved:
        if len(moved) != len(config.sources):
            raise UsageError(f"--input is given {len(moved)} times for {len(config.sources)} sources "
                             f"({', '.join(s.name for s in config.sources)}): one pattern per source, in order")
        config = dataclasses.replace(config, sources=tuple(
            dataclasses.replace(source, patterns=(pattern,)) for source, pattern in zip(config.sources, moved)))
        files, _ = match_sources(config.sources)
        found = {(config.sources[f.source].name, f.relative): f for f in files}
        wanted = {}
        for entry in recorded:
            source = _source_of(entry, config)
            root = input_root([normalized_pattern(p) for p in source_patterns(manifest, source.name)])
            wanted[(source.name, path_under_root(entry["path"], root))] = entry
        missing = sorted(f"{name}:{relative}" for name, relative in wanted if (name, relative) not in found)
        if missing:
            raise UsageError(f"--input finds no file for {len(missing)} of the manifest's inputs: "
                             f"{', '.join(missing[:5])}")
        files = [found[key] for key in wanted]
        pairs = [(file, wanted[(config.sources[file.source].name, file.relative)]) for file in files]
    else:
        files = []
        for entry in recorded:
            source = _source_of(entry, config)
            index = config.sources.index(source)
            root = input_root([normalized_pattern(p) for p in source.patterns])
            (file,) = matched_files([entry["path"]])
            files.append(dataclasses.replace(file, source=index, relative=path_under_root(entry["path"], root),
                                             pattern=source.patterns[0]))
        pairs = list(zip(files, recorded))
    for file, entry in pairs:
        _check_same_file(file, entry)
    return config, sorted(files, key=lambda file: file.order)


def source_patterns(manifest, name: str) -> tuple:
    return next(tuple(s["patterns"]) for s in manifest.config["sources"] if s["name"] == name)


def _source_of(entry: dict, config):
    if "source" in entry:
        return next(source for source in config.sources if source.name == entry["source"])
    if len(config.sources) == 1:
        return config.sources[0]
    raise UsageError("the manifest does not say which source each input file was (made before it did); rerun the "
                     "command it records instead")


def _check_same_file(file, entry: dict) -> None:
    if file.bytes != entry["bytes"]:
        raise UsageError(f"{file.path} has {file.bytes} bytes, the manifest's input {entry['path']} had "
                         f"{entry['bytes']}: not the same file")
    if entry.get("crc32c"):
        _, checksum = file_checksum(file.path)
        if checksum != entry["crc32c"]:
            raise UsageError(f"{file.path}'s crc32c is {checksum}, the manifest's input {entry['path']} had "
                             f"{entry['crc32c']}: not the same file")
