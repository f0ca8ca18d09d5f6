"""Sizing a large cluster: 100 nodes and 10 million entities, calculated from this machine's
measured figures and assumptions stated in the output.

    python -m benchmarks.sizing                      # the defaults below
    python -m benchmarks.sizing --nodes 40 --entities 2000000 --commands-per-entity-hour 30

It reads benchmarks/results.json (the cluster scenario's CPU per command and the memory
scenario's bytes per idle entity) and prints a markdown table. Nothing here is measured at
that scale: it is arithmetic on small measurements, and says which assumption each line
depends on, so that it can be redone with a real deployment's figures.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).with_name("results.json")

#: A shard actor's resident memory with its engine, Ray's worker runtime and asyncpg, idle
#: (measured here: 86 MiB per shard process at start, four shards).
SHARD_PROCESS_MIB = 86
#: Resident memory per live entity inside a shard, state included (measured here: four shards
#: grew by 31 MiB each for 12,500 live bank accounts apiece, about 2.5 KiB per entity).
LIVE_ENTITY_KIB = 2.5
#: Events per second one PostgreSQL primary took from eventactors in the bank benchmark
#: here (2 cores, shared with the clients): the journal's write limit on this machine.
PG_EVENTS_PER_SECOND_HERE = 13_900
#: How much faster a dedicated database server is assumed to be than this shared 2-core VM.
PG_SERVER_FACTOR = 8


def calculate(args: argparse.Namespace, measured: dict[str, Any]) -> list[tuple[str, str, str]]:
    shards = args.shards_per_node * args.nodes
    entities_per_shard = math.ceil(args.entities / shards)
    live_per_node = args.entities * args.live_fraction / args.nodes
    memory_mib = args.shards_per_node * SHARD_PROCESS_MIB + live_per_node * LIVE_ENTITY_KIB / 1024
    commands_per_second = args.entities * args.commands_per_entity_hour / 3600
    cpu_us = measured["driver_cpu_us"] + measured["shard_cpu_us"]
    cores = commands_per_second * cpu_us / 1e6
    journal_limit = PG_EVENTS_PER_SECOND_HERE * PG_SERVER_FACTOR
    databases = math.ceil(commands_per_second * args.events_per_command / journal_limit)
    return [
        ("shards", f"{shards:,} ({args.shards_per_node} per node)",
         "Akka's rule of thumb: about 10 x the most nodes you will run; fixed for the data's life"),
        ("entities per shard", f"{entities_per_shard:,}",
         "a uniform hash (tested: within 5 sigma)"),
        ("live entities per node", f"{live_per_node:,.0f}",
         f"{args.live_fraction:.0%} live at once; passivation drops the rest"),
        ("memory per node", f"{memory_mib / 1024:.1f} GiB",
         f"{SHARD_PROCESS_MIB} MiB per shard process + {LIVE_ENTITY_KIB} KiB per live entity"),
        ("commands per second, cluster", f"{commands_per_second:,.0f}",
         f"{args.commands_per_entity_hour} commands per entity per hour at peak"),
        ("commands per second, per node", f"{commands_per_second / args.nodes:,.0f}", ""),
        ("CPU for commands", f"{cores:,.1f} cores in all, {cores / args.nodes:.2f} per node",
         f"{cpu_us:.0f} us per command (sender + shard, measured at 256 clients, 4 shards)"),
        ("journal writes per second", f"{commands_per_second * args.events_per_command:,.0f}",
         f"{args.events_per_command} events per command"),
        ("PostgreSQL primaries needed", f"{databases}",
         f"{journal_limit:,} events/s each: {PG_EVENTS_PER_SECOND_HERE:,} measured here x "
         f"{PG_SERVER_FACTOR} for a dedicated server; split the journal by slice ranges"),
    ]  # fmt: skip


def measured_figures(results: dict[str, Any]) -> dict[str, float]:
    clients = results["cluster"]["shards_4"]["clients"]["256"]
    return {
        "driver_cpu_us": clients["driver_cpu_us_per_command"],
        "shard_cpu_us": clients["shards_cpu_us_per_command"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--entities", type=int, default=10_000_000)
    parser.add_argument("--shards-per-node", type=int, default=10)
    parser.add_argument("--live-fraction", type=float, default=0.2)
    parser.add_argument("--commands-per-entity-hour", type=float, default=12.0)
    parser.add_argument("--events-per-command", type=float, default=1.0)
    args = parser.parse_args()
    measured = measured_figures(json.loads(RESULTS.read_text()))
    print(f"{args.nodes} nodes, {args.entities:,} entities\n")
    print("| quantity | value | assumption |\n|---|---|---|")
    for name, value, assumption in calculate(args, measured):
        print(f"| {name} | {value} | {assumption} |")


if __name__ == "__main__":
    main()
