"""The architecture as the imports show it: five packages in layers, and no import cycles.

    wwm_cli (the command) --> pipelines (Beam stages) --> wwm_core (pure)
                         \\--> wwm_trainer (TensorFlow) --/      /
                              wwm_torch (PyTorch, an extra) ----/

PyTorch is optional: only wwm_torch imports it (and transformers), and nothing imports wwm_torch;
a test runs `wwm run --then_train` and checks that neither was loaded.

The graph is read from the source files with ``ast``: every import statement, those inside
functions too (a lazy import is still a dependency; it only moves the failure to run time).
A second check imports the trainer and the core in a fresh interpreter and looks at what loaded.
"""
import ast
import collections
import json
import pathlib
import subprocess
import sys


ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("wwm_core", "pipelines", "wwm_cli", "wwm_trainer", "wwm_torch")
TORCH = {"torch", "transformers", "accelerate", "wwm_torch"}
# What each package may import of the others (and of Beam, TensorFlow, PyTorch); wwm_cli, the top,
# may import all but PyTorch.
FORBIDDEN = {
    "wwm_core": {"apache_beam", "pipelines", "wwm_cli", "wwm_trainer"} | TORCH,
    "wwm_trainer": {"apache_beam", "pipelines", "wwm_cli"} | TORCH,
    "pipelines": {"wwm_cli", "wwm_trainer"} | TORCH,
    "wwm_cli": TORCH,
    "wwm_torch": {"apache_beam", "pipelines", "wwm_cli", "wwm_trainer", "tensorflow"},
}
# LTP's neural models run on torch (the ltp-neural extra): loaded only when such a model is named.
ALLOWED = {("wwm_core.segmentation", "torch")}


def _modules() -> dict:
    """{dotted module name: (path, is a package __init__)} of the four packages."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            modules[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return modules


MODULES = _modules()


class _Imports(ast.NodeVisitor):
    """(imported name, line, inside a function) of every import statement of a module."""

    def __init__(self, package: str):
        self.package = package
        self.found = []
        self._depth = 0

    def _function(self, node):
        self._depth += 1
        self.generic_visit(node)
        self._depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def visit_Import(self, node):
        for alias in node.names:
            self.found.append((alias.name, node.lineno, self._depth > 0))

    def visit_ImportFrom(self, node):
        base = node.module or ""
        if node.level:  # relative: from the importing module's package upwards
            parts = self.package.split(".")
            base = ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))
        for alias in node.names:
            # `from package import module` imports the module; `from module import name`, the module.
            submodule = f"{base}.{alias.name}"
            self.found.append((submodule if submodule in MODULES else base, node.lineno, self._depth > 0))


def imports_of(module: str) -> list:
    path, is_package = MODULES[module]
    visitor = _Imports(module if is_package else module.rpartition(".")[0])
    visitor.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
    return visitor.found


def _own_module(name: str):
    """The module of the four packages an imported name loads (a.b.c -> a.b if a.b.c is a
    function or class of it), or None for a third-party name."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def import_graph(*, at_import_time_only: bool) -> dict:
    graph = collections.defaultdict(set)
    for module in MODULES:
        for name, _, in_function in imports_of(module):
            target = _own_module(name)
            if target and target != module and not (at_import_time_only and in_function):
                graph[module].add(target)
    return graph


def cycles(graph: dict) -> list:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph.get(node, ())):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(set(graph) | {successor for successors in graph.values() for successor in successors}):
        if node not in index:
            visit(node)
    return sorted(found)


def test_the_graph_is_read_from_every_module():
    assert set(PACKAGES) <= set(MODULES)
    graph = import_graph(at_import_time_only=False)
    # Known edges, so an empty graph (a broken reader) cannot pass the checks below.
    assert "wwm_core.instances" in graph["wwm_core.generate"]
    assert "pipelines.generate_pipeline" in {t for m in MODULES if m.startswith("wwm_cli") for t in graph[m]}
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_each_package_imports_only_the_layers_below_it():
    wrong = []
    for module in MODULES:
        forbidden = FORBIDDEN[module.split(".")[0]]
        for name, line, _ in imports_of(module):
            if name.split(".")[0] in forbidden and (module, name) not in ALLOWED:
                wrong.append(f"{MODULES[module][0].relative_to(ROOT)}:{line} imports {name}")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles_at_import_time():
    assert cycles(import_graph(at_import_time_only=True)) == []


def test_no_import_cycles_at_all():
    assert cycles(import_graph(at_import_time_only=False)) == []


def test_the_trainer_and_the_core_load_without_beam():
    """In a fresh interpreter: what importing the trainer's entry points, and every module of the
    core, loads."""
    core = sorted(m for m in MODULES if m.split(".")[0] == "wwm_core")
    script = (
        "import importlib, json, sys\n"
        "loaded = {}\n"
        "for group, names in json.loads(sys.argv[1]).items():\n"
        "    for name in names:\n"
        "        importlib.import_module(name)\n"
        "    loaded[group] = sorted({m.split('.')[0] for m in sys.modules} & {'apache_beam', 'pipelines', 'wwm_cli'})\n"
        "print(json.dumps(loaded))\n")
    groups = {"core": core, "trainer": ["wwm_trainer.cli", "wwm_trainer.train"]}
    result = subprocess.run([sys.executable, "-c", script, json.dumps(groups)], cwd=ROOT, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"core": [], "trainer": []}


def test_wwm_run_and_the_tensorflow_trainer_never_import_torch(tmp_path):
    """In a fresh interpreter: `wwm run --then_train` (the pipeline, then the trainer and its
    exports, in one process) on the bundled sample, then what it loaded."""
    script = (
        "import json, sys\n"
        "from wwm_cli import main\n"
        "status = main(sys.argv[1:])\n"
        f"loaded = sorted({{m.split('.')[0] for m in sys.modules}} & set({sorted(TORCH)!r}))\n"
        "print(json.dumps({'status': status, 'loaded': loaded}))\n")
    sample = ROOT / "wwm_core" / "data" / "sample" / "corpus.txt"
    result = subprocess.run(
        [sys.executable, "-c", script, "run", f"--input={sample}", f"--output={tmp_path / 'out'}", "--segmenter=char",
         "--max_seq_length=64", "--dupe_factor=1", "--runner=BundleBasedDirectRunner", "--progress=off",
         "--then_train", f"--model_dir={tmp_path / 'model'}", "--model_config=tiny", "--train_batch_size=4",
         "--num_train_steps=2"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"status": 0, "loaded": []}
    assert (tmp_path / "model" / "export_hf" / "model.safetensors").exists(), "the trainer ran and exported"


# namedtuple's public API is spelled with an underscore (to keep clear of field names).
NAMEDTUPLE_API = {"_fields", "_replace", "_asdict", "_make", "_field_defaults"}


def test_no_private_internals_of_other_libraries():
    """No private attribute, private import or sys.modules trick of another library anywhere in the
    packages: an upgrade of Beam, argparse, tokenizers or numba must not break a command. (The one
    hook into Beam's runner internals, pipelines/local_workers.py, uses only names without an
    underscore, is imported only for multi_processing runs and falls back when they are missing.)"""
    found = []
    for name, (path, _) in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")) \
                        and node.attr not in NAMEDTUPLE_API:
                    found.append(f"{where}: {ast.unparse(node)}")
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] not in PACKAGES:
                found += [f"{where}: from {node.module} import {a.name}" for a in node.names
                          if a.name.startswith("_") and not a.name.startswith("__")]
            elif isinstance(node, ast.Subscript) and ast.unparse(node.value) == "sys.modules" \
                    and isinstance(node.ctx, (ast.Store, ast.Del)):
                found.append(f"{where}: {ast.unparse(node)} assigned")
    assert found == []
