"""The package's layout rules, checked over the source with `ast` (nothing is imported).

- no import circle between modules (imports inside functions count too);
- no module over `MAX_LINES` lines;
- `evaluation/` and `tuning/` import nothing of `bayesft_keras.detection` (they look tasks up);
- no package uses another top-level package's private (`_name`) functions, classes or values;
- `keras.src` / `keras_tuner.src` (Keras internals) only in `tuning/chief_server.py`.

`from pkg import name` counts as importing the module `pkg.name` when there is one, else `pkg`.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = "bayesft_keras"
ROOT = Path(__file__).resolve().parents[1] / "src" / PACKAGE
MAX_LINES = 450
NO_DETECTION = ("evaluation", "tuning")
INTERNALS = ("keras.src", "keras_tuner.src")
# The one module allowed on Keras Tuner internals (its gRPC servicer has no public import path).
INTERNALS_ALLOWED = {f"{PACKAGE}.tuning.chief_server"}


def _module_name(path):
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _sources():
    sources = {}
    for path in sorted(ROOT.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        sources[_module_name(path)] = (path, text, ast.parse(text, filename=str(path)))
    return sources


SOURCES = _sources()
MODULES = set(SOURCES)


def _is_package(module):
    return SOURCES[module][0].name == "__init__.py"


def _where(module, node):
    return f"{SOURCES[module][0].relative_to(ROOT.parent)}:{node.lineno}"


def _resolve(module, node):
    """The absolute name of what an `ImportFrom` node imports from."""
    if not node.level:
        return node.module
    base = module.split(".")
    if not _is_package(module):
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module):
    """``(target, name, node)`` for every import in ``module``: ``target`` the module it imports,
    ``name`` the imported name (None for `import x`)."""
    found = []
    for node in ast.walk(SOURCES[module][2]):
        if isinstance(node, ast.Import):
            found += [(alias.name, None, node) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            source = _resolve(module, node)
            for alias in node.names:
                full = f"{source}.{alias.name}"
                found.append((full if full in MODULES else source, alias.name, node))
    return found


def _package(module):
    """The top-level package of a module: `bayesft_keras.device.noise` -> "device"."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _is_private(name):
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _graph():
    return {
        module: {target for target, _, _ in _imports(module) if target in MODULES and target != module}
        for module in MODULES
    }


def _cycles(graph):
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def _describe_cycle(component, graph):
    members = set(component)
    edges = sorted(f"{a} -> {b}" for a in component for b in graph[a] if b in members)
    return f"{{{', '.join(component)}}} via " + "; ".join(edges)


def test_no_import_circle():
    graph = _graph()
    cycles = _cycles(graph)
    assert not cycles, f"{len(cycles)} import circle(s):\n" + "\n".join(
        _describe_cycle(component, graph) for component in cycles
    )


def test_no_module_is_too_long():
    long = {
        str(path.relative_to(ROOT.parent)): text.count("\n")
        for path, text, _ in SOURCES.values()
        if text.count("\n") > MAX_LINES
    }
    assert not long, f"Modules over {MAX_LINES} lines: " + ", ".join(
        f"{path} ({lines})" for path, lines in sorted(long.items())
    )


@pytest.mark.parametrize("package", NO_DETECTION)
def test_no_detection_import(package):
    detection = f"{PACKAGE}.detection"
    offenders = sorted({
        f"{_where(module, node)} imports {target}"
        for module in MODULES
        if _package(module) == package
        for target, name, node in _imports(module)
        if target == detection or target.startswith(detection + ".")
        or (target == PACKAGE and name == "detection")
    })
    assert not offenders, f"{package}/ must look tasks up, not import detection:\n" + "\n".join(offenders)


def _bindings(module):
    """Local names bound to a bayesft_keras module or to a name imported from one."""
    names = {}
    for target, name, node in _imports(module):
        if not target.startswith(PACKAGE):
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    names[alias.asname] = alias.name
                else:
                    names[alias.name.split(".")[0]] = alias.name.split(".")[0]
        else:
            alias = next(a for a in node.names if a.name == name)
            full = f"{_resolve(module, node)}.{name}"
            names[alias.asname or name] = full
    return names


def _dotted(node):
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return [node.id] + parts[::-1]
    return None


def _private_use(module):
    """``(where, used name)`` for each use of another package's private name in ``module``."""
    own = _package(module)
    found = []

    def check(full, node):
        parts = full.split(".")
        for i, part in enumerate(parts[1:], start=1):
            if _is_private(part):
                owner = parts[1] if i > 1 else ""
                if owner != own:
                    found.append((_where(module, node), ".".join(parts[: i + 1])))
                return

    for target, name, node in _imports(module):
        if target.startswith(PACKAGE):
            check(target if name is None or target.endswith(f".{name}") else f"{target}.{name}", node)
    bindings = _bindings(module)
    for node in ast.walk(SOURCES[module][2]):
        if isinstance(node, ast.Attribute):
            dotted = _dotted(node)
            if dotted and dotted[0] in bindings:
                check(".".join([bindings[dotted[0]]] + dotted[1:]), node)
    return sorted(set(found))


def test_no_cross_package_private_use():
    offenders = [f"{where} uses {name}" for module in sorted(MODULES) for where, name in _private_use(module)]
    assert not offenders, (
        f"{len(offenders)} use(s) of another package's private names (make them public or move them):\n"
        + "\n".join(offenders)
    )


def test_keras_internals_only_in_the_chief_server():
    offenders = sorted({
        f"{_where(module, node)} imports {imported}"
        for module in MODULES - INTERNALS_ALLOWED
        for target, name, node in _imports(module)
        for imported in (target, f"{target}.{name}")
        if any(imported == internal or imported.startswith(internal + ".") for internal in INTERNALS)
    })
    assert not offenders, "Keras / Keras Tuner internals outside tuning/chief_server.py:\n" + "\n".join(offenders)
