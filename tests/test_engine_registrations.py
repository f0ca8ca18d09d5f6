"""`Engine.registrations()`: how tools rebuild an application on another store."""

from __future__ import annotations

from eventactors_examples.bank.domain import AccountBehavior
from eventactors_examples.library.domain import BookBehavior, copy_keys

import eventactors as ea


def test_registrations_replay_the_same_application_on_another_store():
    engine = ea.Engine()
    engine.register("account", AccountBehavior, snapshot_every=50)
    engine.register("book", BookBehavior, identifiers=copy_keys, passivate_after=2.0)

    registrations = engine.registrations()

    assert [(name, behavior) for name, behavior, _ in registrations] == [
        ("account", AccountBehavior),
        ("book", BookBehavior),
    ]
    assert registrations[0][2]["snapshot_every"] == 50
    assert registrations[1][2]["identifiers"] is copy_keys
    other = ea.Engine(store=ea.MemoryStore())
    for name, behavior, options in registrations:
        other.register(name, behavior, **options)
    assert other.entity_types == engine.entity_types


def test_changing_what_registrations_returned_changes_nothing():
    engine = ea.Engine()
    engine.register("account", AccountBehavior, snapshot_every=50)

    engine.registrations()[0][2]["snapshot_every"] = 1

    assert engine.registrations()[0][2]["snapshot_every"] == 50
