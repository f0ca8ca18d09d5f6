"""Cluster mode: the same application, its entities sharded over a Ray cluster.

```python
engine = ea.Engine(store=ea.PostgresStore(dsn), cluster=ea.RayCluster(num_shards=16))
```

- An entity lives on shard `shard_of(persistence_id, num_shards)`, a stable hash. Each shard is
  a named Ray actor (one process) running an engine for that shard's entities; Ray's unique
  actor names keep one live instance of each entity in the cluster, and the store's
  `ConcurrencyError` fences the rare overlap while a shard is being replaced.
- Any process with an engine of the application (a driver, or a behavior through
  `self.engine`) sends to any entity; commands from one process to one entity keep their order.
- Shard actors restart when they die and recover their entities from the store. A command
  that was inside a dying shard fails with `ShardUnavailable` (it may or may not have been
  persisted, as after a timeout); commands sent after it wait for the restart.
- A projection runs once in the cluster, in a named actor, or split into `partitions=N`
  slice-range actors, each with its own offset.
"""

from .._slices import NUM_SLICES, shard_of, slice_of, slice_ranges
from .config import RayCluster

__all__ = ["NUM_SLICES", "RayCluster", "shard_of", "slice_of", "slice_ranges"]
