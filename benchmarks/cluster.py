"""Cluster mode: durable commands per second through Ray shard actors, against one process.

The bank's deposit workload (benchmarks.deposits: `accounts` accounts opened first, then C
clients, client k depositing round-robin into its own accounts k, k + C, ...) on PostgreSQL,
run by the single-process engine and by a cluster engine (`ea.RayCluster`) with 1, 2 and 4
shard actors, at C = 16 and 256, the same deposits (`cluster_deposits`) in every timed phase.
A cluster's driver hosts no entity: each command travels to its shard's process through Ray,
in batches, and its reply travels back. The ratio of a cluster's rate to the single-process
engine's in the same run is therefore the cost of that hop. On a 2-core machine more shards
add processes, not cores: the figures show what the hop costs when the shards share the
driver's cores, not how a cluster scales over nodes.

- Ray is started once for the scenario on this machine (`ray.init(address="local",
  num_cpus=2, ...)`: never a Ray someone else started), with the repository root on the
  workers' PYTHONPATH, and shut down at the end. Shards import the bank's behavior by module
  name (`eventactors_examples`, installed with eventactors).
- Each configuration runs in a PostgreSQL schema of its own (bench_cluster_*), dropped before
  and after, and a cluster in a Ray namespace of its own, whose shard and projection actors
  are ended afterwards (`engine.stop_cluster()`). Its warm-up, not timed: start the engine
  (a cluster creates its shard actors, one process each, and waits for each to answer), then
  open every account (each shard starts its engine and opens its connections). Then the
  timed phases, C = 16 and then C = 256, on the same warm engine; balances are checked at
  the end.
- Driver CPU per command: `time.process_time()` over a timed phase (every thread of the
  harness process, Ray's included) divided by the deposits made. In one process that is the
  whole work; in a cluster the entities run elsewhere, and what is left is routing,
  serializing and Ray's calls. The shard processes' CPU per command (from /proc, Linux only)
  is recorded beside it.
"""

from __future__ import annotations

import asyncio
import os
import time
from functools import partial
from pathlib import Path
from typing import Any

from eventactors_examples.bank.domain import AccountBehavior

import eventactors as ea

from .common import Context, guarded, log
from .deposits import account_ids, check_total, deposit_clients, measurement, open_accounts
from .pg import drop_schemas, on_postgres

SCHEMA = "bench_cluster"
NAMESPACE = "bench-cluster"
SHARDS = (1, 2, 4)
CLIENTS = (16, 256)
RAY_CPUS = 2
ROOT = Path(__file__).resolve().parent.parent  # the repository root, for the Ray workers


def run(context: Context) -> dict[str, Any]:
    settings = context.settings
    results: dict[str, Any] = {
        "workload": {
            "accounts": settings.accounts,
            "clients": list(CLIENTS),
            "deposits": settings.cluster_deposits,
            "shards": list(SHARDS),
            "command": "Deposit(1) to an open account: one Deposited event per command",
            "store": "PostgreSQL",
            "ray_cpus": RAY_CPUS,
        }
    }
    if context.postgres is None:
        log("cluster: skipped, it needs PostgreSQL (every shard process reaches the store)")
        return {**results, "skipped": "PostgreSQL is off"}
    try:
        ray = start_ray()
    except RuntimeError as exc:
        log(f"cluster FAILED: {exc}")
        return {**results, "error": str(exc)}
    try:
        for shards in (None, *SHARDS):
            name = configuration_name(shards)
            measured = guarded(f"cluster {name}", partial(configuration, context, shards))
            results[name] = {"shards": shards, **measured}
    finally:
        ray.shutdown()
    return results


def start_ray() -> Any:
    """A Ray of our own on this machine, whose workers can import the repository's modules."""
    try:
        import ray
    except ImportError:
        raise RuntimeError(
            "the cluster scenario needs Ray: pip install -e '.[ray]' (make bench installs it), "
            "or leave the scenario out with --only"
        ) from None
    ray.init(
        address="local",
        num_cpus=RAY_CPUS,
        include_dashboard=False,
        log_to_driver=False,
        logging_level="ERROR",
        runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}},
    )
    return ray


def configuration_name(shards: int | None) -> str:
    return "single_process" if shards is None else f"shards_{shards}"


def configuration(context: Context, shards: int | None) -> dict[str, Any]:
    dsn = context.postgres
    assert dsn is not None
    schema = f"{SCHEMA}_{configuration_name(shards)}"

    def unit() -> dict[str, Any]:
        context.run(drop_schemas(dsn, schema))
        try:
            return context.run(measure(context, new_engine(dsn, schema, shards)))
        finally:
            context.run(drop_schemas(dsn, schema))

    return on_postgres(context, f"cluster {configuration_name(shards)}", unit)


def new_engine(dsn: str, schema: str, shards: int | None) -> ea.Engine:
    cluster = None
    if shards is not None:
        cluster = ea.RayCluster(num_shards=shards, namespace=f"{NAMESPACE}-{shards}")
    engine = ea.Engine(store=ea.PostgresStore(dsn, schema=schema), cluster=cluster)
    engine.register("account", AccountBehavior)
    return engine


async def measure(context: Context, engine: ea.Engine) -> dict[str, Any]:
    """Warms the engine up, then times each client count; the cluster's actors end after."""
    accounts = account_ids(context.settings.accounts)
    results: dict[str, Any] = {"clients": {}}
    try:
        started = time.perf_counter()
        async with engine:
            await open_accounts(engine, accounts)
            results["warm_up_seconds"] = round(time.perf_counter() - started, 2)
            pids = await shard_pids(engine)
            for clients in CLIENTS:
                measured = await timed(context, engine, accounts, clients, pids)
                report(engine, clients, measured)
                results["clients"][str(clients)] = measured
            states = await asyncio.gather(*(engine.get_state("account", a) for a in accounts))
    finally:
        if engine.cluster is not None:
            await engine.stop_cluster()
    deposits = sum(measured["commands"] for measured in results["clients"].values())
    check_total(sum(state.balance for state, _ in states), deposits)
    return results


async def shard_pids(engine: ea.Engine) -> list[int]:
    if engine.cluster is None:
        return []
    return [int(status["pid"]) for status in await engine.cluster_status()]


async def timed(
    context: Context, engine: ea.Engine, accounts: list[str], clients: int, pids: list[int]
) -> dict[str, Any]:
    per_client = context.settings.cluster_deposits // clients
    shards_cpu = processes_cpu(pids)
    started, cpu = time.perf_counter(), time.process_time()
    latencies, errors = await deposit_clients(engine, accounts, clients, per_client)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    after = processes_cpu(pids)
    shards_cpu = after - shards_cpu if after is not None and shards_cpu is not None else None
    commands = len(latencies)
    return {
        **measurement(commands, elapsed, cpu, latencies, errors),
        "driver_cpu_us_per_command": per_command(cpu, commands),
        "shards_cpu_us_per_command": per_command(shards_cpu, commands),
    }


def processes_cpu(pids: list[int]) -> float | None:
    """CPU seconds (user + system) these processes have used so far, from /proc/PID/stat;
    None without processes, or without /proc."""
    if not pids:
        return None
    ticks = 0
    try:
        for pid in pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15
    except (OSError, ValueError, IndexError):
        return None
    return ticks / os.sysconf("SC_CLK_TCK")


def per_command(seconds: float | None, commands: int) -> float | None:
    """Microseconds per command."""
    return round(seconds / commands * 1e6, 1) if seconds is not None and commands else None


def report(engine: ea.Engine, clients: int, measured: dict[str, Any]) -> None:
    shards = engine.cluster.num_shards if engine.cluster is not None else None
    label = f"cluster {configuration_name(shards)} C={clients}"
    shards_cpu = measured["shards_cpu_us_per_command"]
    log(
        f"{label}: {measured['commands_per_second']:,.0f} cmd/s, p50 {measured['p50_ms']} ms, "
        f"p99 {measured['p99_ms']} ms, driver CPU {measured['driver_cpu_us_per_command']} "
        "us/command"
        + (f", shards CPU {shards_cpu} us/command" if shards_cpu is not None else "")
        + (f", {measured['errors']} errors" if measured["errors"] else "")
    )
