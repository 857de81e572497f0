"""``wwm recipe list`` and ``wwm recipe show NAME``: HFL's recipes, every number with its source."""
import json

from wwm_core.helptext import HelpFormatter, Parser
from wwm_core.recipes import RECIPES, describe


def recipe_main(argv) -> None:
    parser = Parser(prog="wwm recipe", description=__doc__, formatter_class=HelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="the recipes, one line each", formatter_class=HelpFormatter)
    show = commands.add_parser("show", help="a recipe's data and training settings and their sources",
                               formatter_class=HelpFormatter)
    show.add_argument("name", choices=list(RECIPES))
    show.add_argument("--json", action="store_true", help="as JSON")
    args = parser.parse_args(argv)
    if args.command == "list":
        for name, recipe in RECIPES.items():
            lengths = " then ".join(str(phase.max_seq_length) for phase in recipe.phases)
            print(f"{name:22s} {recipe.model}: {recipe.model_config}, {lengths}, {recipe.sentence_task} sentence task, "
                  f"{recipe.optimizer}, init {recipe.init_checkpoint or 'random'}")
        return
    recipe = RECIPES[args.name]
    if args.json:
        print(json.dumps({"name": recipe.name, "model": recipe.model, "data": recipe.data_settings(),
                          "training": recipe.training_settings(), "sources": recipe.sources},
                         ensure_ascii=False, indent=2))
    else:
        print(describe(recipe))
