"""The outputs: ratios derived from the raw figures, results.json, results.md, throughput.png."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

STORE_NAMES = {"sqlite": "SQLite", "postgres": "PostgreSQL"}


def summarize(results: dict[str, Any]) -> None:
    """Adds, per store and client count, eventactors / peer and eventactors as a % of the raw
    limit; and the headline: eventactors' best against the peer's best, per store. Adds each
    cluster configuration's ratios to the single-process engine."""
    cluster_ratios(results.get("cluster"))
    bank, raw = results.get("bank"), results.get("raw", {})
    if not bank:
        return
    headline: dict[str, Any] = {}
    for store in STORE_NAMES:
        rows: dict[str, Any] = bank.get(store, {})
        for clients, row in rows.items():
            ours, theirs = cmd_rate(row.get("eventactors")), cmd_rate(row.get("peer"))
            row["ratio"] = round(ours / theirs, 2) if ours and theirs else None
            limit = raw.get(store, {}).get(clients, {}).get("rows_per_second")
            row["percent_of_raw"] = round(100 * ours / limit, 1) if ours and limit else None
        best = {
            "eventactors": best_of(rows, "eventactors"),
            "peer": best_of(rows, "peer", "peer_fastforward"),
        }
        if best["eventactors"] and best["peer"]:
            ours_clients, _, ours = best["eventactors"]
            theirs_clients, peer, theirs = best["peer"]
            headline[store] = {
                "eventactors_best": ours, "eventactors_clients": int(ours_clients),
                "peer_best": theirs, "peer_clients": int(theirs_clients), "peer_setting": peer,
                "ratio": round(ours / theirs, 2),
            }  # fmt: skip
    bank["headline"] = headline


def cluster_ratios(cluster: dict[str, Any] | None) -> None:
    """Per cluster configuration and client count: its commands/s and its driver's CPU per
    command, each over the single-process engine's at the same client count (same run)."""
    single = (cluster or {}).get("single_process", {}).get("clients", {})
    for name, configuration in (cluster or {}).items():
        if not name.startswith("shards_"):
            continue
        for clients, measured in configuration.get("clients", {}).items():
            base = single.get(clients, {})
            ours, theirs = cmd_rate(measured), cmd_rate(base)
            measured["ratio"] = round(ours / theirs, 2) if ours and theirs else None
            cpu, base_cpu = (m.get("driver_cpu_us_per_command") for m in (measured, base))
            measured["driver_cpu_ratio"] = round(cpu / base_cpu, 2) if cpu and base_cpu else None


def cmd_rate(measured: dict[str, Any] | None) -> float | None:
    return (measured or {}).get("commands_per_second") or None


def best_of(rows: dict[str, Any], *systems: str) -> tuple[str, str, float] | None:
    """(clients, system, rate) of the fastest of these systems' measurements."""
    rates = [
        (clients, system, cmd_rate(row.get(system)))
        for clients, row in rows.items()
        for system in systems
    ]
    measured = [(clients, system, value) for clients, system, value in rates if value]
    return max(measured, key=lambda found: found[2]) if measured else None


def write_json(results: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(results, indent=2) + "\n")


# -- markdown -----------------------------------------------------------------------------


def number(value: float | None, digits: int = 0) -> str:
    return "" if value is None else f"{value:,.{digits}f}"


def table(header: list[str], rows: list[list[str]], text: int = 2) -> list[str]:
    """A markdown table: the first `text` columns left-aligned, the numbers right-aligned."""
    align = ["---" if index < text else "---:" for index in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows] + [""]


def markdown(results: dict[str, Any]) -> str:
    machine = results.get("machine", {})
    lines = [
        "# eventactors benchmarks",
        "",
        f"{machine.get('date', '')}: Python {machine.get('python')}, {machine.get('cpus')} CPUs, "
        f"SQLite {machine.get('sqlite')}, PostgreSQL {machine.get('postgres') or 'not run'}, "
        f"`eventsourcing` {machine.get('eventsourcing')} as the peer, event loop "
        f"{machine.get('event_loop')}. `{machine.get('command')}`",
        "",
    ]
    for section in (
        bank_section, raw_section, recovery_section, memory_section, catch_up_section,
        cluster_section,
    ):  # fmt: skip
        lines += section(results)
    return "\n".join(lines)


def bank_section(results: dict[str, Any]) -> list[str]:
    bank = results.get("bank")
    if not bank:
        return []
    rows = []
    for store, store_name in STORE_NAMES.items():
        for clients, row in bank.get(store, {}).items():
            ours, theirs = row.get("eventactors", {}), row.get("peer", {})
            rows.append([
                "bank deposits", store_name, clients,
                "error" if "error" in ours else number(ours.get("commands_per_second")),
                number(ours.get("p50_ms"), 2), number(ours.get("p99_ms"), 2),
                "error" if "error" in theirs else number(theirs.get("commands_per_second")),
                f"{row['ratio']}x" if row.get("ratio") else "",
                f"{row['percent_of_raw']}%" if row.get("percent_of_raw") else "",
            ])  # fmt: skip
        best = bank.get("headline", {}).get(store)
        if best:
            rows.append([
                "**best vs best**", store_name,
                f"{best['eventactors_clients']} vs {best['peer_clients']}",
                number(best["eventactors_best"]), "", "", number(best["peer_best"]),
                f"**{best['ratio']}x**", "",
            ])  # fmt: skip
    workload = bank.get("workload", {})
    lines = ["## Bank deposits: durable commands per second", ""]
    lines += table(
        ["scenario", "store", "clients", "eventactors cmd/s", "p50 ms", "p99 ms", "peer cmd/s",
         "ratio", "% of raw"],
        rows,
    )  # fmt: skip
    notes = [
        f"{workload.get('accounts')} accounts; deposits per client count "
        f"{workload.get('deposits')}; client k deposits round-robin into its own accounts "
        "(k, k + C, ...). The peer runs single-threaded at 1 client and from a thread pool of "
        "C workers otherwise, with its aggregate cache on and fast-forwarding off."
    ]
    fastforward = [
        f"{STORE_NAMES[store]} {number(cmd)}"
        for store in STORE_NAMES
        if (cmd := bank.get(store, {}).get("1", {}).get("peer_fastforward", {}).get(
            "commands_per_second"))
    ]  # fmt: skip
    if fastforward:
        notes.append(
            "The peer with fast-forwarding on (its default), 1 client: "
            + ", ".join(fastforward) + " cmd/s."
        )  # fmt: skip
    return lines + notes + [""]


def raw_section(results: dict[str, Any]) -> list[str]:
    raw, bank = results.get("raw"), results.get("bank", {})
    if not raw:
        return []
    rows = []
    for store, store_name in STORE_NAMES.items():
        for clients, measured in raw.get(store, {}).items():
            percent = bank.get(store, {}).get(clients, {}).get("percent_of_raw")
            rows.append([
                store_name, clients, str(measured.get("batch")),
                "error" if "error" in measured else number(measured.get("rows_per_second")),
                measured.get("method", "executemany"),
                f"{percent}%" if percent else "",
            ])  # fmt: skip
    lines = ["## The raw limit: the same rows, batched, no framework", ""]
    return lines + table(
        ["store", "clients", "rows per transaction", "raw rows/s", "method", "eventactors"],
        rows,
    )


def recovery_section(results: dict[str, Any]) -> list[str]:
    recovery = results.get("recovery")
    if not recovery:
        return []
    rows = []
    for store, store_name in STORE_NAMES.items():
        measured = recovery.get(store)
        if not measured:
            continue
        if "error" in measured:
            rows.append([store_name, "error", "", "", ""])
            continue
        one, many = measured["one_entity"], measured["many_entities"]
        snap = measured["one_entity_with_snapshots"]
        workload = recovery["workload"]
        rows += [
            [store_name, f"1 entity, {one['events']:,} events", f"{one['seconds']:.3f} s",
             number(one["events_per_second"]), ""],
            [store_name, f"{workload['small_streams']:,} entities x "
             f"{workload['small_stream_events']} events", f"{many['seconds']:.3f} s",
             number(many["events_per_second"]), number(many["entities_per_second"])],
            [store_name, f"1 entity, {snap['events']:,} events, snapshot every "
             f"{snap['snapshot_every']}", f"{snap['median_ms']} ms", "", ""],
        ]  # fmt: skip
    lines = ["## Recovery", ""]
    return lines + table(["store", "replay", "time", "events/s", "entities/s"], rows)


def memory_section(results: dict[str, Any]) -> list[str]:
    memory = results.get("memory")
    if not memory:
        return []
    target = memory.get("target_bytes_per_entity")
    if "bytes_per_entity" in memory:
        row = [
            f"{memory['entities']:,}", number(memory["bytes_per_entity"]),
            f"{memory['live_entities']:,}", "yes" if memory.get("meets_target") else "no",
        ]  # fmt: skip
    else:
        row = ["", "error", "", ""]
    lines = ["## Memory per idle live entity (RSS, MemoryStore, shared state)", ""]
    return lines + table(["entities", "bytes/entity", "live", f"<= {target} B"], [row], 0)


def catch_up_section(results: dict[str, Any]) -> list[str]:
    catch_up = results.get("catch_up")
    if not catch_up:
        return []
    rows = []
    for store, store_name in STORE_NAMES.items():
        for name, entry in catch_up.get(store, {}).items():
            if not name.startswith("page_"):
                continue
            rows.append([
                store_name, name.removeprefix("page_"),
                number(entry["eventactors"]["events_per_second"]),
                number(entry["eventactors_projection"]["events_per_second"]),
                number(entry["peer"]["events_per_second"]),
                f"{entry['ratio_eventactors_projection_vs_peer']}x",
            ])  # fmt: skip
        if "error" in catch_up.get(store, {}):
            rows.append([store_name, "error", "", "", "", ""])
    events = catch_up.get("workload", {}).get("events", 0)
    lines = [f"## Catch-up: reading the whole log of {events:,} events", ""]
    return lines + table(
        ["store", "page", "read_all ev/s", "projection ev/s", "peer ev/s", "projection vs peer"],
        rows,
    )


def cluster_section(results: dict[str, Any]) -> list[str]:
    cluster = results.get("cluster")
    if not cluster:
        return []
    lines = ["## Cluster mode: the hop through Ray (bank deposits, PostgreSQL)", ""]
    if "error" in cluster or "skipped" in cluster:
        return [*lines, f"Not measured: {cluster.get('error') or cluster.get('skipped')}", ""]
    rows, warm_ups = [], []
    for name, configuration in cluster.items():
        if name == "workload":
            continue
        engine = engine_label(configuration.get("shards"))
        if "error" in configuration:
            rows.append([engine, "", "error", "", "", "", "", ""])
            continue
        warm_ups.append(f"{engine} {configuration['warm_up_seconds']} s")
        for clients, measured in configuration.get("clients", {}).items():
            rows.append([
                engine, clients, number(measured.get("commands_per_second")),
                number(measured.get("p50_ms"), 2), number(measured.get("p99_ms"), 2),
                number(measured.get("driver_cpu_us_per_command")),
                number(measured.get("shards_cpu_us_per_command")),
                f"{measured['ratio']}x" if measured.get("ratio") else "",
            ])  # fmt: skip
    lines += table(
        ["engine", "clients", "cmd/s", "p50 ms", "p99 ms", "driver CPU us/cmd",
         "shards CPU us/cmd", "vs single process"],
        rows,
    )  # fmt: skip
    workload = cluster.get("workload", {})
    note = (
        f"{workload.get('accounts')} accounts, {workload.get('deposits')} deposits per row, "
        "client k depositing round-robin into its own accounts (k, k + C, ...), after a warm-up "
        f"(engine and shard processes started, accounts opened: {', '.join(warm_ups)}). One "
        f"local Ray with {workload.get('ray_cpus')} CPUs on this machine: the shards share its "
        "cores with the driver and PostgreSQL. CPU per command: the harness process (the "
        "driver), and the shard processes together."
    )
    return [*lines, note, ""]


def engine_label(shards: int | None) -> str:
    if shards is None:
        return "single process"
    return f"cluster, {shards} shard{'s' if shards > 1 else ''}"


# -- the plot -----------------------------------------------------------------------------


def plot(results: dict[str, Any], path: Path) -> bool:
    """Commands per second against clients, one line per system and store; False if there
    are no bank figures to plot."""
    bank = results.get("bank")
    if not bank:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 6), dpi=120)
    styles = {"sqlite": "tab:blue", "postgres": "tab:orange"}
    for store, color in styles.items():
        rows = bank.get(store, {})
        for system, line in (("eventactors", "-"), ("peer", "--")):
            points = [(int(c), cmd_rate(row.get(system))) for c, row in rows.items()]
            points = [(c, value) for c, value in points if value]
            if points:
                axes.plot(*zip(*points, strict=True), line, marker="o", color=color,
                          label=f"{system}, {STORE_NAMES[store]}")  # fmt: skip
            if system == "eventactors":
                for clients, value in points:
                    ratio = rows[str(clients)].get("ratio")
                    if ratio:
                        axes.annotate(f"{ratio}x", (clients, value), textcoords="offset points",
                                      xytext=(6, 6), fontsize=8, color=color,
                                      bbox={"boxstyle": "round,pad=0.15", "fc": "white",
                                            "ec": "none", "alpha": 0.8})  # fmt: skip
        raw = results.get("raw", {}).get(store, {})
        limits = [(int(c), m.get("rows_per_second")) for c, m in raw.items()]
        limits = [(c, value) for c, value in limits if value]
        if limits:
            axes.plot(*zip(*limits, strict=True), ":", color=color, alpha=0.6,
                      label=f"raw limit, {STORE_NAMES[store]} (same batch)")  # fmt: skip
    clients = [int(c) for c in bank.get("workload", {}).get("clients", [1, 16, 256])]
    axes.set_xscale("log", base=2)
    axes.set_yscale("log")
    axes.set_xticks(clients, [str(c) for c in clients])
    axes.set_xlabel("concurrent clients")
    axes.set_ylabel("durable commands per second")
    axes.set_title("Bank deposits: eventactors vs eventsourcing (labels: ratio)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return True
