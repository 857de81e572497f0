"""Writes deploy/flex/metadata.json from the wwm commands' own parsers (wwm_cli.submit.flex_metadata):
run it after changing a flag of wwm prepare, segment or run; tests/test_deploy.py checks that the
file matches the parsers.

    .venv/bin/python deploy/flex/make_metadata.py
"""
import json
import pathlib

from wwm_cli.submit import flex_metadata

if __name__ == "__main__":
    path = pathlib.Path(__file__).with_name("metadata.json")
    path.write_text(json.dumps(flex_metadata(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {path}")
