"""gs:// input, model, vocabulary and output, through a real GCS emulator on 127.0.0.1.

The emulator is the gcp-storage-emulator package's server; Beam's GCS filesystem and the
google-cloud-storage client talk to it over HTTP exactly as they would to GCS. Without
credentials Beam retries google.auth.default() for ~25 s before connecting anonymously, once
per process, so this module costs that much once.
"""
import contextlib
import json
import os
import pathlib
import socket

import pytest

from wwm_cli.data import run
from wwm_cli.inspect import iter_instances
from tests.test_pipeline import DOCUMENTS

tf = pytest.importorskip("tensorflow")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def gcs_emulator(bucket_name: str):
    """A GCS emulator (the gcp-storage-emulator package's server) on 127.0.0.1 with one empty
    bucket, which it yields; STORAGE_EMULATOR_HOST and NO_GCE_CHECK point Beam's and Google's
    clients at it while it runs."""
    from gcp_storage_emulator.server import create_server
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    port = _free_port()
    server = create_server("127.0.0.1", port, in_memory=True)
    server.start()
    saved = {k: os.environ.get(k) for k in ("STORAGE_EMULATOR_HOST", "NO_GCE_CHECK")}
    os.environ["STORAGE_EMULATOR_HOST"] = f"http://127.0.0.1:{port}"
    os.environ["NO_GCE_CHECK"] = "true"
    try:
        yield storage.Client(project="test", credentials=AnonymousCredentials()).create_bucket(bucket_name)
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="module")
def gcs_bucket():
    with gcs_emulator("wwm-test") as bucket:
        yield bucket


def test_gcs_input_model_and_output(gcs_bucket, tmp_path):
    from ltp_extension.perceptron import CWSTrainer

    trainer = CWSTrainer()
    trainer.epoch = 3
    trainer.shuffle = False
    trainer.load_train_data(str(pathlib.Path(__file__).parent / "fixtures" / "segmented.txt"))
    trainer.train().save(str(tmp_path / "cws_model.bin"))
    gcs_bucket.blob("models/ltp/cws_model.bin").upload_from_filename(str(tmp_path / "cws_model.bin"))
    for index, document in enumerate(DOCUMENTS):
        gcs_bucket.blob(f"corpus/part-{index}.txt").upload_from_string("\n".join(document) + "\n")

    # Both phases of the default recipe, Parquet beside the TFRecords, files cut to equal sizes.
    top = run(["--input=gs://wwm-test/corpus/*.txt", "--output=gs://wwm-test/out", "--segmenter=ltp",
               "--ltp_model=gs://wwm-test/models/ltp", "--dupe_factor=2", "--num_shards=2", "--output_format=both",
               "--balance_shards", "--runner=BundleBasedDirectRunner"])
    assert top["kind"] == "phases" and top["accounting"]["records_in"] == len(DOCUMENTS)
    assert top["accounting"]["balanced"]
    names = {blob.name for blob in gcs_bucket.client.list_blobs(gcs_bucket)}
    assert "out/manifest.json" in names
    assert not [n for n in names if ".tmp-" in n], "temporary shard files left behind"
    assert not [n for n in names if ".wwm-work" in n], "the work folder was left behind"
    decoded = 0
    for phase in ("seq128", "seq512"):
        manifest = json.loads(gcs_bucket.blob(f"out/{phase}/manifest.json").download_as_bytes())
        assert manifest["num_instances"] > 0 and f"out/{phase}/vocab.txt" in names
        for file, info in manifest["file_info"].items():
            blob = gcs_bucket.get_blob(f"out/{phase}/{file}")
            assert info["bytes"] == blob.size and info["crc32c"] == blob.crc32c, "as GCS itself reports them"
        # The shards TensorFlow reads are the ones on gs://.
        local = tmp_path / "shard.tfrecord"
        gcs_bucket.blob(f"out/{phase}/{manifest['files'][0]}").download_to_filename(str(local))
        count = sum(1 for _ in tf.data.TFRecordDataset([str(local)]))
        assert count == manifest["file_info"][manifest["files"][0]]["records"]
        decoded += manifest["num_instances"]
        records = [info["records"] for info in manifest["file_info"].values()]
        assert len(records) == 4 and max(records) - min(records) <= 1, "two TFRecord and two Parquet files"
    assert len(list(iter_instances("gs://wwm-test/out"))) == decoded


def test_segmenter_trained_to_and_served_from_gcs(gcs_bucket, tmp_path):
    """`wwm segmenter train` writes its model folder to gs://; eval and the identity read it back."""
    from wwm_cli.segment import segmenter_main
    from pipelines.segmenters import SegmenterChoice

    fixture = str(pathlib.Path(__file__).parent / "fixtures" / "segmented.txt")
    segmenter_main(["train", f"--train={fixture}", "--output=gs://wwm-test/models/trained", "--epochs=3"])
    names = {blob.name for blob in gcs_bucket.client.list_blobs(gcs_bucket, prefix="models/trained/")}
    assert names == {"models/trained/cws_model.bin", "models/trained/config.json", "models/trained/training.json"}

    scores = segmenter_main(["eval", "--model=gs://wwm-test/models/trained", f"--gold={fixture}"])
    assert scores["f1"] > 0.8 and scores["sentences"] > 0  # scored on its own training sentences

    local = tmp_path / "trained"
    local.mkdir()
    for name in ("cws_model.bin", "config.json"):
        gcs_bucket.blob(f"models/trained/{name}").download_to_filename(str(local / name))
    remote_choice = SegmenterChoice("ltp", "gs://wwm-test/models/trained")
    assert remote_choice.identity() == SegmenterChoice("ltp", str(local)).identity()
    sentence = ["使用语言模型来预测下一个词。"]
    assert remote_choice.load().segment(sentence) == SegmenterChoice("ltp", str(local)).load().segment(sentence)


def test_prepare_segment_and_run_on_gcs(gcs_bucket):
    """The cached-segmentation workflow with every path on gs://, as on Dataflow."""
    from wwm_cli.data import prepare
    from wwm_cli.segment import segment

    for index, document in enumerate(DOCUMENTS):
        gcs_bucket.blob(f"seg/corpus/part-{index}.txt").upload_from_string("\n".join(document) + "\n")
    beam = "--runner=BundleBasedDirectRunner"
    prepare(["--input=gs://wwm-test/seg/corpus/*.txt", "--output=gs://wwm-test/seg/prepared", "--num_shards=2", beam])
    cache = segment(["--input=gs://wwm-test/seg/prepared", "--segmenter=jieba", beam])
    assert cache["num_documents"] == len(DOCUMENTS)
    manifest = run(["--input_format=parquet", "--input=gs://wwm-test/seg/prepared/documents/*.parquet",
                    "--output=gs://wwm-test/seg/out", "--segmenter=jieba", "--dupe_factor=2", "--num_shards=2",
                    "--max_seq_length=128", beam])
    sentences = sum(len(document) for document in DOCUMENTS)
    assert manifest["counters"]["sentences.segmentation_cache_hit"] == sentences
    assert manifest["word_cache_folders"][0].startswith("gs://wwm-test/seg/prepared/segmentation/jieba-")


def test_gcs_ids_do_not_depend_on_the_bucket_and_outputs_are_locked_and_checksummed(gcs_bucket, tmp_path):
    """The same corpus in two buckets gives the same shard bytes; a gs:// output is locked by an
    object (created with if_generation_match=0 on GCS: this emulator ignores preconditions, so the
    race itself is not exercised here, only the refusal, the owner's name and the release); file
    checksums come from the object's metadata and equal the local file's."""
    from pipelines.output import LOCK_NAME, claim_output, file_checksum
    from wwm_core.errors import UsageError

    other = gcs_bucket.client.create_bucket("wwm-other")
    for bucket in (gcs_bucket, other):
        for index, document in enumerate(DOCUMENTS):
            bucket.blob(f"ids/corpus/part-{index}.txt").upload_from_string("\n".join(document) + "\n")
    common = ["--dupe_factor=2", "--num_shards=2", "--runner=BundleBasedDirectRunner"]
    first = run(["--input=gs://wwm-test/ids/corpus/*.txt", "--output=gs://wwm-test/ids/out", *common])
    second = run(["--input=gs://wwm-other/ids/corpus/*.txt", "--output=gs://wwm-other/ids/out", *common])
    assert first["files"] == second["files"]
    for name in first["files"]:
        assert (gcs_bucket.blob(f"ids/out/{name}").download_as_bytes()
                == other.blob(f"ids/out/{name}").download_as_bytes())

    with claim_output("gs://wwm-test/locked", overwrite=False, command="wwm run --first"):
        assert gcs_bucket.blob(f"locked/{LOCK_NAME}").exists()
        with pytest.raises(UsageError, match=r"is in use by another run \(pid \d+ on host .*running: wwm run --first\)"):
            claim_output("gs://wwm-test/locked", overwrite=False)
    assert not gcs_bucket.blob(f"locked/{LOCK_NAME}").exists()
    with pytest.raises(UsageError, match=r"^cannot write to --output gs://no-such-bucket/out: "):
        claim_output("gs://no-such-bucket/out", overwrite=False)
    assert not [b.name for b in gcs_bucket.client.list_blobs(gcs_bucket, prefix="ids/out/") if LOCK_NAME in b.name]

    shard = f"ids/out/{first['files'][0]}"
    local = tmp_path / "shard.tfrecord"
    gcs_bucket.blob(shard).download_to_filename(str(local))
    assert file_checksum(f"gs://wwm-test/{shard}") == file_checksum(str(local))
    assert file_checksum(str(local))[0] == local.stat().st_size > 0
