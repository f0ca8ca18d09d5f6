"""Everything that talks to Ray directly: starting or joining it, and finding or creating the
named actors that host shards and projections."""

from __future__ import annotations

import functools
import logging
from typing import Any

from ..errors import EventActorsError
from .app_spec import AppSpec
from .config import RayCluster

log = logging.getLogger("eventactors.cluster")

#: Shard and projection actors take no CPU slot (their work is I/O bound and a slot would cap
#: shards per node at the core count) and are spread over the nodes.
DEFAULT_ACTOR_OPTIONS: dict[str, Any] = {"num_cpus": 0, "scheduling_strategy": "SPREAD"}
#: Concurrent calls one host serves: batches, reply collections and management calls.
MAX_CONCURRENT_CALLS = 10_000


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise EventActorsError("cluster mode needs Ray: pip install 'eventactors[ray]'") from None
    return ray


def ensure_ray(cluster: RayCluster) -> Any:
    """Joins Ray, starting a local one when `address` is None and none is running here."""
    ray = import_ray()
    if not ray.is_initialized():
        options = {"logging_level": logging.WARNING, "include_dashboard": False}
        options.update(cluster.init_options)
        log.info("starting Ray (address=%s)", cluster.address)
        ray.init(address=cluster.address, **options)
    return ray


@functools.cache
def _remote_class(cls: type) -> Any:
    return import_ray().remote(cls)


def _options(cluster: RayCluster, name: str) -> dict[str, Any]:
    options: dict[str, Any] = {
        **DEFAULT_ACTOR_OPTIONS,
        **cluster.actor_options,
        "name": name,
        "namespace": cluster.namespace,
        "get_if_exists": True,
        "lifetime": "detached",  # outlives the process that happened to create it
        "max_restarts": cluster.max_restarts,
        "max_task_retries": 0,  # a retried batch could run twice or out of order
        "max_concurrency": MAX_CONCURRENT_CALLS,
    }
    return options


def shard_actor(spec: AppSpec, shard: int) -> Any:
    """The handle of the shard's host, created if no process has created it yet."""
    from .shard_host import ShardHost

    cluster = spec.cluster
    return (
        _remote_class(ShardHost)
        .options(**_options(cluster, cluster.shard_name(shard)))
        .remote(spec, shard)
    )


def projection_actor(spec: AppSpec, name: str, options: dict[str, Any]) -> Any:
    """The handle of the projection's singleton actor, created if it does not exist yet."""
    from .projection_host import ProjectionHost

    cluster = spec.cluster
    return (
        _remote_class(ProjectionHost)
        .options(**_options(cluster, cluster.projection_name(name)))
        .remote(spec, name, options)
    )


def existing_actor(cluster: RayCluster, name: str) -> Any | None:
    ray = import_ray()
    try:
        return ray.get_actor(name, namespace=cluster.namespace)
    except ValueError:
        return None


def kill(handle: Any) -> None:
    """Ends the actor for good (no restart)."""
    import_ray().kill(handle, no_restart=True)


def is_actor_error(error: BaseException) -> bool:
    """Whether a call failed because its actor died or could not be reached."""
    ray = import_ray()
    return isinstance(error, ray.exceptions.RayActorError)


def is_unreachable(error: BaseException) -> bool:
    """Whether the actor is alive but could not be reached for now (the call may be retried)."""
    ray = import_ray()
    return isinstance(error, ray.exceptions.ActorUnavailableError)


def named_actors(cluster: RayCluster) -> list[str]:
    """The names of the live actors in the application's namespace."""
    ray = import_ray()
    return [
        actor["name"]
        for actor in ray.util.list_named_actors(all_namespaces=True)
        if actor["namespace"] == cluster.namespace
    ]
