"""The crash campaign: the bank workload in a child process, SIGKILLed at random moments and
restarted on the same database, with the store checked after every kill.

A kill lands at one of four moments, chosen by a seeded RNG: any time after the spawn
(imports, engine start), during recovery (after "up": entities recovering beside the
projection's catch-up), mid-load (after "ready"), or right after the k-th acknowledgement.
The acknowledged set is every ack line the parent read, including those still in the pipe
when the child died: the child wrote each one after its reply, so each was acknowledged.

After each kill, with the child dead, `check_store` opens the database from this process and
counts anomalies by kind (see ANOMALY_KINDS). A clean campaign reports none; the tests plant
each kind in a copy of a database to show that the checks can fail.
"""

from __future__ import annotations

import math
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from crash_checks import check_store
from crash_records import (
    CampaignResult,
    CommandAck,
    Target,
    parse_ack,
)
from durability_checks import LineReader

CHILD = Path(__file__).with_name("crash_campaign_child.py")


# -- the child and the kill loop -----------------------------------------------------------


@dataclass(frozen=True)
class KillPlan:
    moment: str  # spawn | recovery | load | ack
    delay: float = 0.0  # seconds after the spawn, "up" or "ready"
    after_acks: int = 0

    @staticmethod
    def draw(rng: random.Random) -> KillPlan:
        moment = rng.choices(["spawn", "recovery", "load", "ack"], [2, 2, 3, 3])[0]
        if moment == "ack":
            return KillPlan(moment, after_acks=rng.randint(1, 500))
        span = {"spawn": (0.0, 0.6), "recovery": (0.0, 0.05), "load": (0.05, 1.5)}[moment]
        return KillPlan(moment, delay=rng.uniform(*span))


@dataclass
class Cycle:
    acks: list[CommandAck] = field(default_factory=list)
    phase: str = "starting"  # starting | recovering | loaded
    killed: bool = False
    failure: str | None = None  # child_failed or child_stalled, with what it said


def run_cycle(
    target: Target, run: int, plan: KillPlan, *, seed: int, clients: int, accounts: int,
    log: Path, timeout: float = 60.0,
) -> Cycle:  # fmt: skip
    """Starts a child, SIGKILLs it as `plan` says, and returns what it acknowledged."""
    read_fd, write_fd = os.pipe()
    arguments = [target.location, target.schema, write_fd, seed, run, clients, accounts]
    log_start = log.stat().st_size if log.exists() else 0
    with log.open("ab") as stderr, os.fdopen(read_fd, "rb") as pipe:
        try:
            child = subprocess.Popen(
                [sys.executable, str(CHILD), *map(str, arguments)], stdin=subprocess.DEVNULL,
                stdout=stderr, stderr=stderr, pass_fds=(write_fd,),
            )  # fmt: skip
        finally:
            os.close(write_fd)  # the child holds the only writer: its death ends the pipe
        reader = LineReader(pipe)
        try:
            cycle = _follow(child, reader, plan, timeout)
            if child.poll() is None:
                os.kill(child.pid, signal.SIGKILL)
            cycle.killed = child.wait(timeout=30) == -signal.SIGKILL and cycle.failure is None
            cycle.acks += [parse_ack(line) for line in reader.rest(time.monotonic() + 10)
                           if line.startswith("ack ")]  # fmt: skip
        finally:
            if child.poll() is None:
                child.kill()
                child.wait(timeout=30)
            reader.close()
    if cycle.failure is not None:
        with log.open("rb") as written:
            written.seek(log_start)
            cycle.failure += ": " + written.read().decode(errors="replace")[-1500:]
    return cycle


def _follow(
    child: subprocess.Popen[bytes], reader: LineReader, plan: KillPlan, timeout: float
) -> Cycle:
    """Reads the child's lines until the plan's kill moment (or a failure)."""
    cycle = Cycle()
    now = time.monotonic()
    deadline = now + timeout
    kill_at = now + plan.delay if plan.moment == "spawn" else math.inf
    while (now := time.monotonic()) < kill_at:
        if now >= deadline:
            cycle.failure = f"child_stalled: no kill point within {timeout}s ({plan})"
            return cycle
        line = reader.readline(min(kill_at, deadline))
        if line is None:
            if time.monotonic() < min(kill_at, deadline):  # end of file: the child exited
                code = child.wait(timeout=30)
                cycle.failure = f"child_failed: exit code {code} in phase {cycle.phase}"
                return cycle
        elif line == "up":
            cycle.phase = "recovering"
            if plan.moment == "recovery":
                kill_at = time.monotonic() + plan.delay
        elif line == "ready":
            cycle.phase = "loaded"
            if plan.moment == "load":
                kill_at = time.monotonic() + plan.delay
        else:
            cycle.acks.append(parse_ack(line))
            if plan.moment == "ack" and len(cycle.acks) >= plan.after_acks:
                break
    return cycle


async def run_campaign(
    target: Target, *, kills: int, seed: int, workdir: Path, clients: int = 32,
    accounts: int = 24, progress: Callable[[str], None] | None = None,
) -> CampaignResult:  # fmt: skip
    """Kills and restarts the child until `kills` kills are done, checking after each."""
    rng = random.Random(seed)
    result = CampaignResult(store=target.location, seed=seed)
    started = time.monotonic()
    log = workdir / f"crash-campaign-{seed}.log"
    while result.kills < kills and result.cycles < 2 * kills + 5:
        result.cycles += 1
        plan = KillPlan.draw(rng)
        cycle = run_cycle(
            target, result.cycles, plan, seed=seed, clients=clients, accounts=accounts, log=log
        )
        result.acks += cycle.acks
        if cycle.killed:
            result.kills += 1
            result.kill_moments[plan.moment] += 1
            result.kill_phases[cycle.phase] += 1
        if cycle.failure is not None:
            kind, _, detail = cycle.failure.partition(": ")
            result.anomalies.add(kind, f"run {result.cycles}: {detail}")
        checked = await check_store(target, result.acks, result.anomalies)
        result.events_stored = checked.events
        result.caught_up.append(checked.caught_up)
        if progress is not None:
            progress(
                f"run {result.cycles}: {plan.moment} kill in phase {cycle.phase}, "
                f"{len(cycle.acks)} acks (total {result.acknowledged}), "
                f"{checked.events} events ({checked.caught_up} past the offset), "
                f"anomalies {dict(result.anomalies.counts)}"
            )
    result.seconds = time.monotonic() - started
    return result
