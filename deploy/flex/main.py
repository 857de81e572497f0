"""The Flex Template's entry point (FLEX_TEMPLATE_PYTHON_PY_FILE in deploy/Dockerfile).

Dataflow's launcher runs ``python main.py --command=STAGE --PARAM=VALUE ... <Dataflow's options>``
(among them --template_location: the job is written there and started by Dataflow, so the wwm
command returns as soon as the job is handed over). One stage per launch, as metadata.json says;
deploy/flex/run_recipe.sh launches prepare, segment and run one after the other.
"""
import sys

from wwm_cli import main
from wwm_cli.submit import flex_argv
from wwm_core.errors import UsageError

if __name__ == "__main__":
    try:
        argv = flex_argv(sys.argv[1:])
    except UsageError as error:
        print(f"wwm flex template: {error}", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(argv))
