"""Hostile inputs for decoders, and a deadline for each call that decodes one.

Every generated input is bounded (at most about 200 KB, nesting at most 100,000 deep), so a
decoder that is linear in its input answers in milliseconds; `call_within` fails the test,
naming the input, when one takes longer than `DEADLINE` seconds, instead of hanging the run.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import msgspec
from hypothesis import strategies as st

#: Seconds one decode may take. Generous for a loaded CI machine; a hang is far longer.
DEADLINE = 5.0


class Outcome:
    """What one call did: returned `value`, or raised `error`."""

    __slots__ = ("error", "value")

    def __init__(self) -> None:
        self.value: Any = None
        self.error: BaseException | None = None


def call_within(function: Callable[..., Any], *args: Any, seconds: float = DEADLINE) -> Outcome:
    """Calls `function(*args)` on a daemon thread and waits at most `seconds` for it. A call
    that does not return by then fails the test; its thread is left behind (a daemon), which
    is all one can do about a hung C extension."""
    outcome = Outcome()
    done = threading.Event()

    def run() -> None:
        try:
            outcome.value = function(*args)
        except BaseException as exc:  # reported to the test, which decides what is allowed
            outcome.error = exc
        finally:
            done.set()

    threading.Thread(target=run, daemon=True, name="fuzzed decode").start()
    if not done.wait(seconds):
        raise AssertionError(
            f"{getattr(function, '__qualname__', function)} did not return within {seconds}s "
            f"for {shorten(args)}"
        )
    return outcome


def shorten(value: Any, limit: int = 300) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def only(outcome: Outcome, *allowed: type[BaseException], given: Any) -> None:
    """Fails unless the call returned or raised one of `allowed`, naming the input."""
    if outcome.error is not None and not isinstance(outcome.error, allowed):
        names = ", ".join(kind.__name__ for kind in allowed)
        raise AssertionError(
            f"{type(outcome.error).__name__}: {outcome.error} (only {names} may come out) "
            f"for {shorten(given)}"
        ) from outcome.error


# -- strategies -----------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def nested(depth: int, inner: bytes = b"") -> bytes:
    return b"[" * depth + inner + b"]" * depth


#: Texts that are not what they claim: numbers past every integer type, non-finite numbers,
#: nesting past any recursion limit, invalid UTF-8, and JSON of the wrong shape.
SPECIAL_JSON = [
    b"",
    b" ",
    b"null",
    b"{}",
    b"[]",
    b'""',
    b"\xef\xbb\xbf{}",  # a byte-order mark
    b"1" + b"0" * 400,
    b"-1" + b"0" * 5000,
    b"1e400",
    b"-1e400",
    b"NaN",
    b"Infinity",
    b"[1e99999]",
    b'"\xff\xfe"',
    b'{"\xff": 1}',
    b'"\\ud800"',  # a lone surrogate, escaped
    b'{"a": 1, "a": 2}',
    nested(1_000),
    nested(100_000),
    b"{" * 50_000,
    b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
    b"[" * 100_000,
    b'"' + b"x" * 200_000 + b'"',
]


def mangled(valid: bytes) -> st.SearchStrategy[bytes]:
    """`valid`, truncated, with a byte changed, or with bytes inserted."""
    size = len(valid)
    truncated = st.integers(0, max(size - 1, 0)).map(lambda end: valid[:end])
    flipped = st.tuples(st.integers(0, max(size - 1, 0)), st.integers(0, 255)).map(
        lambda change: valid[: change[0]] + bytes([change[1]]) + valid[change[0] + 1 :]
    )
    inserted = st.tuples(st.integers(0, size), st.binary(min_size=1, max_size=8)).map(
        lambda change: valid[: change[0]] + change[1] + valid[change[0] :]
    )
    return truncated | flipped | inserted


def hostile_json(valid: list[bytes], fields: list[str]) -> st.SearchStrategy[bytes]:
    """Payloads for a JSON decoder whose valid payloads include `valid` and whose objects
    have `fields`: random bytes, mangled valid ones, JSON of any shape, the valid field
    names with values of any type, and the special texts."""
    objects = st.dictionaries(st.sampled_from(fields), json_values, max_size=len(fields)).map(
        msgspec.json.encode
    )
    return st.one_of(
        st.binary(max_size=64),
        st.sampled_from(valid).flatmap(mangled),
        json_values.map(msgspec.json.encode),
        objects,
        st.sampled_from(SPECIAL_JSON),
        st.sampled_from(fields).flatmap(
            lambda field: st.sampled_from(SPECIAL_JSON).map(
                lambda special: b'{"' + field.encode() + b'":' + special + b"}"
            )
        ),
    )


#: Values of every kind a SQLite column can hold, and the wrong kinds of text.
sqlite_values = st.one_of(
    st.none(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(),
    st.text(max_size=30),
    st.binary(max_size=30),
    st.sampled_from([s.decode("utf-8", "replace") for s in SPECIAL_JSON[:18]]),
    st.sampled_from(SPECIAL_JSON[:18]),
)

#: Timestamp texts that are not an aware ISO 8601 time.
bad_timestamps = st.sampled_from(
    [
        "",
        "yesterday",
        "2024-13-45T00:00:00+00:00",
        "2024-05-01T12:00:00",  # no offset
        "2024-05-01",
        "99999-01-01T00:00:00+00:00",
        "2024-05-01T25:00:00+00:00",
        "2024-05-01T12:00:00+99:00",
        "\x00",
    ]
) | st.text(max_size=30)
