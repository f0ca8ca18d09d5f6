"""`RayCluster`: where and how an engine's entities are sharded over Ray.

Plain data with no Ray import, so that `eventactors` imports without the `ray` extra; Ray is
imported when an engine with a cluster starts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

_NAMESPACE = re.compile(r"[A-Za-z0-9_.-]{1,100}")


@dataclass(frozen=True, slots=True)
class RayCluster:
    """Shards the engine's entities over Ray actors.

    - `num_shards`: fixed for the life of the data's deployment (placement is
      `shard_of(persistence_id, num_shards)`). Each shard is one Ray actor, so one process:
      about ten per node, as Akka advises, and at least the number of nodes you may grow to.
    - `address`: None starts a local Ray (or joins the one this process already started);
      `"auto"` or `"host:port"` joins a running cluster (`ray start --head`).
    - `namespace`: the Ray namespace of the application's named actors. Engines that share it
      share shards and projection singletons; two applications on one cluster use two.
    - `max_restarts`: how often Ray restarts a dead shard (-1: always).
    - `actor_options`: extra Ray options for shard and projection actors (resources,
      `scheduling_strategy`, `runtime_env`...). By default they take no CPU slot, so many shards
      fit a small machine, and Ray spreads them over the nodes.
    - `max_batch`: commands from one process to one shard travel in batches of at most this
      many, in order: one Ray call carries many commands.
    - `init_options`: extra keyword arguments for `ray.init` when this engine starts Ray.
    """

    num_shards: int = 16
    address: str | None = None
    namespace: str = "eventactors"
    max_restarts: int = -1
    actor_options: dict[str, Any] = field(default_factory=dict)
    max_batch: int = 1000
    init_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("num_shards", "max_batch"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"RayCluster {name} must be an int >= 1, got {value!r}")
        if self.num_shards > 100_000:
            raise ValueError(f"RayCluster num_shards is {self.num_shards}: at most 100000")
        if not isinstance(self.namespace, str) or not _NAMESPACE.fullmatch(self.namespace):
            raise ValueError(
                "RayCluster namespace must be 1-100 letters, digits, '_', '.' or '-', "
                f"got {self.namespace!r}"
            )
        if self.address is not None and (not isinstance(self.address, str) or not self.address):
            raise ValueError(
                f"RayCluster address must be None or a non-empty str, got {self.address!r}"
            )
        restarts = self.max_restarts
        if isinstance(restarts, bool) or not isinstance(restarts, int) or restarts < -1:
            raise ValueError(f"RayCluster max_restarts must be an int >= -1, got {restarts!r}")
        for name in ("actor_options", "init_options"):
            if not isinstance(getattr(self, name), dict):
                raise TypeError(f"RayCluster {name} must be a dict, got {getattr(self, name)!r}")

    def shard_name(self, shard: int) -> str:
        return f"shard-{shard}-of-{self.num_shards}"

    @staticmethod
    def projection_name(name: str) -> str:
        return f"projection-{name}"
