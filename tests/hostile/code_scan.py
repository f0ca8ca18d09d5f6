"""An AST scan for the constructs that turn data into code: unpickling, eval, dynamic imports.

The scan reads source, never imports it, so it sees every module (optional extras included).
It reports constructs, not judgements: whether a use is a decode path of stored or
client-sent data is decided by the exemption table in `test_no_pickle_or_eval`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

#: Modules whose loaders run code chosen by the bytes they read.
UNSAFE_MODULES = frozenset(
    {"pickle", "cPickle", "_pickle", "cloudpickle", "dill", "marshal", "shelve", "jsonpickle",
     "yaml"}
)  # fmt: skip
#: Builtins that compile or import code from a value.
UNSAFE_BUILTINS = frozenset({"eval", "exec", "compile", "__import__"})
#: The loading functions of those modules.
LOADERS = frozenset({"load", "loads", "Unpickler", "unsafe_load", "full_load", "open"})


@dataclass(frozen=True, order=True)
class Finding:
    path: str  # relative to the repository, with forward slashes
    line: int
    construct: str  # "import pickle", "call eval", "call importlib.import_module"...


def scan_source(source: str, path: str = "<sample>") -> list[Finding]:
    """Every unsafe construct in one module's source."""
    tree = ast.parse(source, filename=path)
    aliases: dict[str, str] = {}  # a local name -> the unsafe module (or importlib) it stands for
    found: list[Finding] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                unsafe = _unsafe_part(alias.name)
                if unsafe is not None:
                    found.append(Finding(path, node.lineno, f"import {unsafe}"))
                    aliases[alias.asname or alias.name.split(".")[0]] = unsafe
                elif alias.name == "importlib":
                    aliases[alias.asname or "importlib"] = "importlib"
        elif isinstance(node, ast.ImportFrom):
            module_unsafe = _unsafe_part(node.module or "")
            for alias in node.names:
                unsafe = module_unsafe or _unsafe_part(alias.name)
                if unsafe is not None:
                    found.append(Finding(path, node.lineno, f"import {unsafe}"))
                    if module_unsafe is None:  # `from ray import cloudpickle`
                        aliases[alias.asname or alias.name] = unsafe
                    elif alias.name in LOADERS:  # `from pickle import loads`
                        aliases[alias.asname or alias.name] = f"{unsafe}.{alias.name}"
                elif node.module == "importlib" and alias.name == "import_module":
                    aliases[alias.asname or alias.name] = "importlib.import_module"
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            construct = _unsafe_call(node, aliases)
            if construct is not None:
                found.append(Finding(path, node.lineno, construct))
    return sorted(found)


def _unsafe_part(dotted: str) -> str | None:
    return next((part for part in dotted.split(".") if part in UNSAFE_MODULES), None)


def _unsafe_call(call: ast.Call, aliases: Mapping[str, str]) -> str | None:
    function = call.func
    if isinstance(function, ast.Name):
        if function.id in UNSAFE_BUILTINS:
            return f"call {function.id}"
        target = aliases.get(function.id, "")
        if "." in target:  # an imported loader, called by its bare name
            if target == "importlib.import_module" and _constant_text(call):
                return None
            return f"call {target}"
        return None
    if not (isinstance(function, ast.Attribute) and isinstance(function.value, ast.Name)):
        return None
    owner = function.value.id
    if owner == "builtins" and function.attr in UNSAFE_BUILTINS:
        return f"call {function.attr}"
    module = aliases.get(owner)
    if module is None:
        return None
    if module == "importlib":
        if function.attr != "import_module" or _constant_text(call):
            return None  # a module named in the code is not data
        return "call importlib.import_module"
    if function.attr in LOADERS:
        return f"call {module}.{function.attr}"
    return None


def _constant_text(call: ast.Call) -> bool:
    return bool(call.args) and isinstance(call.args[0], ast.Constant)


def scan_tree(root: Path, relative_to: Path) -> list[Finding]:
    """Every unsafe construct in every .py file under `root`."""
    found: list[Finding] = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(relative_to).as_posix()
        found.extend(scan_source(path.read_text(encoding="utf-8"), relative))
    return found


Exemptions = Mapping[tuple[str, str], str]


def unexempted(found: Iterable[Finding], exemptions: Exemptions) -> list[Finding]:
    """The findings no exemption covers: new uses, each to be removed or justified."""
    return [finding for finding in found if (finding.path, finding.construct) not in exemptions]


def stale(found: Iterable[Finding], exemptions: Exemptions) -> list[tuple[str, str]]:
    """The exemptions no finding needs any more: the table must not outlive the code."""
    used = {(finding.path, finding.construct) for finding in found}
    return sorted(key for key in exemptions if key not in used)
