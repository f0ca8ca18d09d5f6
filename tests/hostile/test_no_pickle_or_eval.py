"""No pickle, eval or data-chosen import on any path that decodes stored or client-sent data.

Every use of such a construct in the package must be listed below with the reason it is not
such a path. The test fails on a new unlisted use, and on a listed one that is gone (so the
table never outlives the code it excuses).
"""

from __future__ import annotations

from pathlib import Path

from code_scan import Finding, scan_source, scan_tree, stale, unexempted

REPOSITORY = Path(__file__).resolve().parents[2]
PACKAGE = REPOSITORY / "src" / "eventactors"

#: (file, construct) -> why it is not a decode path of stored or client-sent data.
EXEMPTIONS: dict[tuple[str, str], str] = {
    ("src/eventactors/cluster/wire.py", "import cloudpickle"): (
        "pack()/unpack(): commands between the cluster's own processes (the driver and its "
        "shard actors), over Ray's internal channels, which pickle every call anyway; never "
        "stored, never read from a client"
    ),
    ("src/eventactors/cluster/wire.py", "call cloudpickle.loads"): (
        "unpack(): the bytes come from pack() in a driver of the same application, inside "
        "the cluster (see shard_host.py); a failure is a SerializationError"
    ),
    ("src/eventactors/cluster/wire.py", "import pickle"): (
        "portable(): round-trips an exception raised in this very shard process, to learn "
        "whether Ray can carry it back; the bytes never leave the function"
    ),
    ("src/eventactors/cluster/wire.py", "call pickle.loads"): (
        "portable(): loads only what pickle.dumps made of that exception a moment before"
    ),
    ("src/eventactors/cli.py", "call importlib.import_module"): (
        "the CLI's own modules, eventactors._cli_<command> and the EXAMPLES table, named "
        "by argparse choices: the program's code, never data"
    ),
    ("src/eventactors/_app_loading.py", "call importlib.import_module"): (
        "load_app(): the application module the operator names with --app, as `python -m` "
        "would import it; the operator's own code, never stored or client-sent data"
    ),
}

PLANTED = """
import pickle
import yaml as yml
import ray.cloudpickle
from ray import cloudpickle as cp
from dill import loads as dill_loads
from marshal import loads
import importlib
from importlib import import_module as im
import builtins

def decode(blob, name, text):
    pickle.loads(blob)
    yml.load(text)
    cp.loads(blob)
    dill_loads(blob)
    loads(blob)
    eval(text)
    exec(text)
    compile(text, "x", "exec")
    __import__(name)
    builtins.eval(text)
    importlib.import_module(name)
    im(name + ".x")
"""
PLANTED_CONSTRUCTS = [
    "import pickle",
    "import yaml",
    "import cloudpickle",
    "import cloudpickle",
    "import dill",
    "import marshal",
    "call pickle.loads",
    "call yaml.load",
    "call cloudpickle.loads",
    "call dill.loads",
    "call marshal.loads",
    "call eval",
    "call exec",
    "call compile",
    "call __import__",
    "call eval",
    "call importlib.import_module",
    "call importlib.import_module",
]

HARMLESS = """
import importlib
import json
import re
import msgspec

pattern = re.compile("x")
json.loads("{}")
msgspec.json.decode(b"{}")
importlib.import_module("eventactors.console.server")
importlib.import_module(".nats", __name__)

class Model:
    def eval(self): ...
    def loads(self): ...

Model().eval()
Model().loads()
pickle = "just a name"
"""


def test_the_scan_finds_every_planted_construct():
    found = scan_source(PLANTED, "src/eventactors/planted.py")
    assert sorted(finding.construct for finding in found) == sorted(PLANTED_CONSTRUCTS)
    assert all(finding.path == "src/eventactors/planted.py" for finding in found)


def test_the_scan_ignores_lookalikes_and_imports_of_modules_named_in_the_code():
    assert scan_source(HARMLESS) == []


def test_a_new_use_fails_and_a_stale_exemption_fails():
    """The two checks the package test runs, on planted input: each can fail."""
    planted = scan_source("import pickle\npickle.loads(b'')\n", "src/eventactors/stores/new.py")
    assert [(f.path, f.construct) for f in unexempted(planted, EXEMPTIONS)] == [
        ("src/eventactors/stores/new.py", "import pickle"),
        ("src/eventactors/stores/new.py", "call pickle.loads"),
    ]
    gone = {("src/eventactors/stores/old.py", "call eval"): "was needed once"}
    assert stale(planted, {**EXEMPTIONS, **gone}) == sorted([*EXEMPTIONS, *gone])
    assert stale([Finding("src/eventactors/stores/old.py", 1, "call eval")], gone) == []


def test_the_package_unpickles_evaluates_and_imports_data_nowhere_but_the_exempted_places():
    found = scan_tree(PACKAGE, REPOSITORY)
    assert found, "the scan found nothing at all: is PACKAGE right?"
    new = unexempted(found, EXEMPTIONS)
    assert not new, "unsafe constructs: remove them, or add them to EXEMPTIONS with why:\n" + (
        "\n".join(f"  {f.path}:{f.line}: {f.construct}" for f in new)
    )


def test_every_exemption_is_still_needed():
    unused = stale(scan_tree(PACKAGE, REPOSITORY), EXEMPTIONS)
    assert not unused, f"exemptions for code that is gone; delete them: {unused}"
