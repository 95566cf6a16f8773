"""The import graph of onnxsym is layered, one way, and checked here from the source (ast, nothing imported).

Every project module belongs to one layer of LAYERS (lowest first). At module level a module imports only modules
of its own layer or of lower ones, and the graph has no cycle even when imports inside functions count as edges.
The only exceptions are function-level imports marked `# lazy: <reason>` on the import line: a method that MXNet's
API puts on a lower layer than the code it needs (`Symbol.bind` runs the executor), or start-up time (the CLI).
The library never imports its own facade (`import onnxsym as mx`): modules import the modules they use.

converters/ and models/ are installed as onnxsym.converters and onnxsym.models and are read under those names.
"""
import ast
import io
import os
import tokenize

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FOLDERS = {"onnxsym": "onnxsym", "converters": "onnxsym.converters", "models": "onnxsym.models"}

# The documented architecture, lowest layer first. An entry names a module, or with ".*" a package and everything
# in it. A module may import, at module level, modules of its own layer and of the layers before it.
LAYERS = [
    ("base", ["onnxsym._checkout", "onnxsym.base", "onnxsym._files", "onnxsym.name", "onnxsym._shapes",
              "onnxsym.runtime", "onnxsym.runtime.library", "onnxsym.runtime.device", "onnxsym.context",
              "onnxsym.runtime.features", "onnxsym.engine", "onnxsym.util", "onnxsym.runtime.rng",
              "onnxsym._random_api", "onnxsym.gluon"]),
    # errors, dtypes, names and hidden keys (mx.name), partial shapes, atomic files, devices (onnxruntime's
    # import, what it can run on, device copies of host buffers, mx.runtime.Features), MXNet's engine and NumPy-mode
    # switches (mx.engine, mx.util), the seed stream of sampling nodes and the argument handling of mx.nd.random /
    # mx.sym.random (written once for both); no graph and no operator
    ("onnx builder", ["onnxsym.lower", "onnxsym.lower.builder", "onnxsym.lower.dtype_passes"]),
    # the one place that writes ONNX protos: every op's lowering writes through GraphBuilder
    ("ops", ["onnxsym.ops.*"]),
    # the operator registry and one family per module (Custom excepted: see custom)
    ("symbol", ["onnxsym.symbol.*"]),
    # the Symbol API over the registry: composition, inference, MXNet's JSON
    ("lower", ["onnxsym.lower.to_onnx"]),
    # Symbol -> ONNX model
    ("ndarray", ["onnxsym.runtime.ndarray", "onnxsym.runtime.sparse"]),
    # NDArray: a numpy buffer on a device; its sparse storage types (row_sparse, csr) over dense buffers
    ("custom", ["onnxsym.custom.*"]),
    # mx.operator and the Custom op: its lowering needs Symbols (composites) and kernels that run on NDArrays
    ("runtime", ["onnxsym.runtime.pyops", "onnxsym.runtime.ort", "onnxsym.runtime.binding",
                 "onnxsym.runtime.imperative", "onnxsym.runtime.monitoring", "onnxsym.runtime.folding",
                 "onnxsym.runtime.executor",
                 "onnxsym.runtime.tape", "onnxsym.autograd.*"]),
    # ORT sessions (with custom ops' Python kernels), imperative mx.nd ops, training graphs, Executor
    ("frontends", ["onnxsym.ndarray.*", "onnxsym.module.*", "onnxsym.kvstore", "onnxsym.kvstore_dist",
                   "onnxsym.random", "onnxsym.viz",
                   "onnxsym.recordio", "onnxsym.monitor", "onnxsym.image.*",
                   "onnxsym.test_utils", "onnxsym._test_utils_compare", "onnxsym._test_utils_random",
                   "onnxsym._test_utils_env", "onnxsym._namespaces", "onnxsym.contrib.*", "onnxsym.rnn.*"]),
    # mx.nd, mx.mod and its companions (io, metric, init, optimizer, ...), mx.kv, mx.random, mx.viz, mx.recordio, mx.rnn
    ("converters", ["onnxsym.converters.*", "onnxsym.onnx"]),
    # ONNX import/export and mx.onnx
    ("top", ["onnxsym", "onnxsym.cli", "onnxsym.launch", "onnxsym.__main__", "onnxsym.models.*", "onnxsym.compat"]),
    # the public facade (mx.*), the command line, the model zoo written as MXNet programs, and `import mxnet`
    # resolving to the facade (compat)
]

# Modules whose every function-level import is lazy for one stated reason (the marks on their lines may follow).
LAZY_MODULES = {}

# Modules that may import the top package `onnxsym` (its facade, mx.*) itself.
FACADE_USERS = ("onnxsym", "onnxsym.models", "onnxsym.compat")

LAZY_MARK = "# lazy:"


def _modules(root=ROOT):
    """{module name: source path} of every project module."""
    modules = {}
    for folder, package in FOLDERS.items():
        for dirpath, _, filenames in os.walk(os.path.join(root, folder)):
            for filename in filenames:
                if filename.endswith(".py"):
                    path = os.path.join(dirpath, filename)
                    rel = os.path.relpath(path, os.path.join(root, folder))[:-3].replace(os.sep, ".")
                    name = package if rel == "__init__" else package + "." + rel.removesuffix(".__init__")
                    modules[name] = path
    return modules


class Import:
    """One import statement: where it is, what it names, what project modules it loads, and how."""

    def __init__(self, module, node, targets, in_function, comments, top_names):
        self.module, self.line, self.targets = module, node.lineno, targets
        self.in_function = in_function
        self.reason = next((c[len(LAZY_MARK):].strip() for c in comments if c.startswith(LAZY_MARK)), None)
        self.top_names = top_names      # names imported from the top package itself (`from onnxsym import x`)
        self.imports_top = isinstance(node, ast.Import) and any(
            a.name == "onnxsym" or a.name.startswith("onnxsym.") for a in node.names)

    @property
    def lazy(self):
        return self.in_function and (self.reason is not None or self.module in LAZY_MODULES)

    def __repr__(self):
        return "%s:%d -> %s" % (self.module, self.line, ", ".join(self.targets))


def _absolute(name):
    """`converters.x` / `models.x` (as the checkout spells them) -> their installed names."""
    for folder, package in FOLDERS.items():
        if name == folder or name.startswith(folder + "."):
            return package + name[len(folder):]
    return name


def _targets(module, node, is_package, modules):
    """The project modules an import statement loads (the most specific ones; parents are added later)."""
    if isinstance(node, ast.Import):
        found = []
        for alias in node.names:
            name = _absolute(alias.name)
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name:
                found.append(name)
        return found, []
    if node.level:
        base = (module if is_package else module.rpartition(".")[0]).split(".")
        base = ".".join(base[:len(base) - node.level + 1])
        source = base + ("." + node.module if node.module else "")
    else:
        source = _absolute(node.module)
    found, top_names = [], []
    for alias in node.names:
        if source + "." + alias.name in modules:
            found.append(source + "." + alias.name)
        elif source in modules:
            found.append(source)
            if source == "onnxsym":
                top_names.append(alias.name)
    return found, top_names


def _comments(path):
    """{line number: [comments on that line]}."""
    comments = {}
    with open(path, encoding="utf-8") as handle:
        for token in tokenize.generate_tokens(io.StringIO(handle.read()).readline):
            if token.type == tokenize.COMMENT:
                comments.setdefault(token.start[0], []).append(token.string)
    return comments


def imports(modules=None):
    """Every import statement of the project that loads a project module, as Import records."""
    modules = modules or _modules()
    found = []
    for module, path in sorted(modules.items()):
        with open(path, encoding="utf-8") as handle:
            tree = ast.parse(handle.read(), path)
        comments = _comments(path)
        is_package = path.endswith("__init__.py")

        def walk(node, in_function):
            for child in ast.iter_child_nodes(node):
                inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
                if isinstance(child, (ast.Import, ast.ImportFrom)):
                    targets, top_names = _targets(module, child, is_package, modules)
                    if targets:
                        lines = range(child.lineno, (child.end_lineno or child.lineno) + 1)
                        found.append(Import(module, child, targets, in_function,
                                            [c for n in lines for c in comments.get(n, ())], top_names))
                walk(child, inside)

        walk(tree, False)
    return found


def _with_parents(module, target, modules):
    """`target` and the packages Python initializes to load it, except `module`'s own packages (already loading
    when `module` runs); a package named explicitly (`import onnxsym as mx`) is a dependency all the same."""
    parts = target.split(".")
    parents = [".".join(parts[:i]) for i in range(1, len(parts))]
    loaded = [t for t in parents if t in modules and not module.startswith(t + ".")]
    return loaded + ([target] if target != module else [])


def upward_imports(records, modules):
    """(module, its layer, loaded module, its layer) for each module-level import of a higher layer."""
    upward = []
    for record in records:
        if record.in_function:
            continue
        own = layer_of(record.module)
        for target in record.targets:
            for loaded in _with_parents(record.module, target, modules):
                layer = layer_of(loaded)
                if layer[0] > own[0]:
                    upward.append((record.module, own[1], loaded, layer[1]))
    return upward


def graph(records, modules, include):
    """{module: set of modules it loads} over the import records `include` accepts."""
    edges = {m: set() for m in modules}
    for record in records:
        if include(record):
            for target in record.targets:
                edges[record.module].update(_with_parents(record.module, target, modules))
    return edges


def cycles(edges):
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        work = [(v, iter(sorted(edges[v])))]
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        while work:
            node, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(edges[w]))))
                    break
                if w in on_stack:
                    low[node] = min(low[node], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        component.append(w)
                        if w == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def layer_of(module):
    """(index, name) of the layer a module belongs to; None when LAYERS does not place it."""
    for position, (name, entries) in enumerate(LAYERS):
        for entry in entries:
            if module == entry or (entry.endswith(".*") and (module == entry[:-2] or module.startswith(entry[:-1]))):
                return position, name
    return None


@pytest.fixture(scope="module")
def project():
    modules = _modules()
    return modules, imports(modules)


def test_the_project_is_found():
    modules = _modules()
    for name in ("onnxsym", "onnxsym.symbol.symbol", "onnxsym.runtime.executor", "onnxsym.converters.onnx_export",
                 "onnxsym.models.resnet", "onnxsym.cli"):
        assert name in modules
    assert len(modules) > 60


def test_every_module_has_one_layer(project):
    modules, _ = project
    unplaced = sorted(m for m in modules if layer_of(m) is None)
    assert not unplaced, "modules LAYERS does not place: %s" % unplaced
    for module in modules:
        claims = [name for name, entries in LAYERS for entry in entries
                  if module == entry or (entry.endswith(".*") and (module == entry[:-2]
                                                                  or module.startswith(entry[:-1])))]
        assert len(claims) == 1, "%s is in layers %s" % (module, claims)


def test_no_import_cycle_outside_marked_lazy_imports(project):
    modules, records = project
    found = cycles(graph(records, modules, lambda r: not r.lazy))
    assert not found, "import cycles (counting function-level imports): %s" % found


def test_function_level_imports_of_project_modules_say_why(project):
    _, records = project
    unmarked = [r for r in records if r.in_function and r.reason is None and r.module not in LAZY_MODULES]
    assert not unmarked, "function-level imports without a '%s <reason>' comment: %s" % (LAZY_MARK, unmarked)
    empty = [r for r in records if r.in_function and r.reason == ""]
    assert not empty, "'%s' without a reason: %s" % (LAZY_MARK, empty)
    marked_at_top = [r for r in records if not r.in_function and r.reason is not None]
    assert not marked_at_top, "'%s' on module-level imports: %s" % (LAZY_MARK, marked_at_top)


def test_lazy_imports_are_needed(project):
    """A lazy import reaches a higher layer or closes a cycle, unless it is there for start-up time."""
    modules, records = project
    module_level = graph(records, modules, lambda r: not r.lazy)
    needless = []
    for record in records:
        if not record.lazy or "start-up" in (record.reason or LAZY_MODULES.get(record.module, "")):
            continue
        own = layer_of(record.module)[0]
        for target in record.targets:
            if layer_of(target)[0] > own:
                continue
            trial = {m: set(e) for m, e in module_level.items()}
            trial[record.module].update(_with_parents(record.module, target, modules))
            if not cycles(trial):
                needless.append("%r (%s)" % (record, target))
    assert not needless, "lazy imports that could be module-level imports: %s" % needless


def test_the_library_does_not_import_its_facade(project):
    _, records = project
    offenders = [r for r in records if r.module not in FACADE_USERS
                 and not any(r.module.startswith(user + ".") for user in FACADE_USERS[1:])
                 and (r.imports_top or r.top_names)]
    assert not offenders, "imports of the top package (the mx.* facade) inside the library: %s" % offenders


def test_module_level_imports_point_down(project):
    modules, records = project
    upward = ["%s (%s) -> %s (%s)" % edge for edge in upward_imports(records, modules)]
    assert not upward, "module-level imports of a higher layer: %s" % upward


# ----- the checks themselves can fail: a project with one bad edge of each kind (written to a temporary tree)
def _tree(tmp_path, files):
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for folder in FOLDERS:
        (tmp_path / folder).mkdir(exist_ok=True)
        (tmp_path / folder / "__init__.py").touch()
    modules = _modules(str(tmp_path))
    return modules, imports(modules)


def test_a_cycle_through_a_function_level_import_is_found(tmp_path):
    modules, records = _tree(tmp_path, {
        "onnxsym/symbol/__init__.py": "from .symbol import Symbol\n",
        "onnxsym/symbol/symbol.py": "from ..ops.registry import get_op\nclass Symbol: pass\n",
        "onnxsym/ops/__init__.py": "",
        "onnxsym/ops/registry.py": "def get_op():\n    from ..symbol.shapes import merge\n",
        "onnxsym/symbol/shapes.py": "def merge(): pass\n",
    })
    found = cycles(graph(records, modules, lambda r: not r.lazy))
    # ops.registry -> onnxsym.symbol (the package it must initialize) -> symbol.symbol -> ops.registry
    assert found == [["onnxsym.ops.registry", "onnxsym.symbol", "onnxsym.symbol.symbol"]]
    unmarked = [r for r in records if r.in_function and r.reason is None]
    assert [(r.module, r.line) for r in unmarked] == [("onnxsym.ops.registry", 2)]


def test_a_marked_lazy_import_is_no_edge_and_an_upward_one_is_found(tmp_path):
    modules, records = _tree(tmp_path, {
        "onnxsym/symbol/symbol.py": ("class Symbol:\n    def bind(self):\n"
                                     "        from ..runtime.executor import bind  # lazy: MXNet's API\n"),
        "onnxsym/runtime/executor.py": "from ..symbol.symbol import Symbol\n",
        "onnxsym/ops/registry.py": "from ..runtime.executor import bind\n",
        "converters/onnx_export.py": "import onnxsym as mx\nfrom onnxsym import sym\nfrom onnxsym import base\n",
        "onnxsym/runtime/__init__.py": "", "onnxsym/symbol/__init__.py": "", "onnxsym/ops/__init__.py": "",
        "onnxsym/base.py": "",
    })
    lazy = [r for r in records if r.lazy]
    assert [(r.module, r.reason) for r in lazy] == [("onnxsym.symbol.symbol", "MXNet's API")]
    assert not cycles(graph(records, modules, lambda r: not r.lazy))
    assert cycles(graph(records, modules, lambda r: True)) == [["onnxsym.runtime.executor", "onnxsym.symbol.symbol"]]
    assert upward_imports(records, modules) == [
        ("onnxsym.converters.onnx_export", "converters", "onnxsym", "top"),     # import onnxsym as mx
        ("onnxsym.converters.onnx_export", "converters", "onnxsym", "top"),     # from onnxsym import sym
        ("onnxsym.ops.registry", "ops", "onnxsym.runtime.executor", "runtime")]
    facade = [(r.line, r.imports_top, r.top_names) for r in records if r.module == "onnxsym.converters.onnx_export"]
    assert facade == [(1, True, []), (2, False, ["sym"]), (3, False, [])]
