"""The same pipeline on Beam's portable runner (embedded job server) gives the same bytes."""
from tests.test_pipeline import run_wwm, shard_bytes


def test_portable_runner_matches_the_local_runner(tmp_path):
    local = run_wwm(tmp_path, name="local")
    portable = run_wwm(tmp_path, "--runner=PortableRunner", "--job_endpoint=embed",
                       "--environment_type=LOOPBACK", name="portable")
    assert portable["num_instances"] == local["num_instances"] > 0
    assert shard_bytes(tmp_path / "portable") == shard_bytes(tmp_path / "local")
