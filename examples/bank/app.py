"""The bank application as the `eventactors` command loads it.

`eventactors rebuild balances --app eventactors_examples.bank.app:build_engine --store bank.db`

An app factory takes the store the command opened and returns an engine with its entity types
registered and its projections added; it may be async.
"""

from __future__ import annotations

import eventactors as ea

from .balances import add_balances_projection
from .domain import register


async def build_engine(store: ea.Store) -> ea.Engine:
    engine = ea.Engine(store=store)
    register(engine)
    await add_balances_projection(engine)
    return engine
