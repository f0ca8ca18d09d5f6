"""Tools for testing applications built on eventactors.

- `BehaviorTestKit`: given events (or a state), when a command, then the events, the state, or
  a rejection: a behavior tested in memory, in milliseconds, by the real runtime.
- `eventactors.testing.conformance` (imported on its own, being pytest test classes): the
  store contract every backend passes, for a store of your own to prove itself with.
"""

from .behavior_kit import BehaviorTestKit, CommandOutcome

__all__ = ["BehaviorTestKit", "CommandOutcome"]
