"""Which Host headers the console answers to, and what kind of address it is bound to.

A console answers only to the names it is served under, so that a page on another site
cannot reach it through a name of its own that resolves to the console's address (DNS
rebinding). Host headers carry IPv6 literals in brackets: `[::1]`, never `::1`.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence

#: Loopback names: every console answers to these.
LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]")

#: Bind addresses that mean "every interface".
WILDCARDS = ("0.0.0.0", "::", "")


def header_name(host: str) -> str:
    """`host` as a Host header carries it: lower case, an IPv6 literal compressed and in
    brackets."""
    bare = host.strip().removeprefix("[").removesuffix("]")
    try:
        address = ipaddress.ip_address(bare)
    except ValueError:
        return host.strip().lower()
    return f"[{address.compressed}]" if address.version == 6 else address.compressed


def is_wildcard(host: str) -> bool:
    return host.strip().removeprefix("[").removesuffix("]") in WILDCARDS


def is_loopback(host: str) -> bool:
    """Whether only this machine can reach `host`; a name other than localhost may resolve
    to anything, so it is not."""
    name = header_name(host)
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name.removeprefix("[").removesuffix("]")).is_loopback
    except ValueError:
        return False


def allowed_hosts(bind_host: str) -> Sequence[str]:
    """The Host names a console bound to `bind_host` answers to: the loopback names, and
    the address it is bound to or, bound to every interface, this machine's host name."""
    own = socket.gethostname() if is_wildcard(bind_host) else bind_host
    return sorted({*LOCAL_HOSTS, header_name(own)})


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on `host`:`port`, made before anything else starts, so that a
    port in use is one `OSError` rather than a server that started and then stopped."""
    bare = host.strip().removeprefix("[").removesuffix("]")
    if ":" in bare:
        return socket.create_server(
            (bare, port), family=socket.AF_INET6, dualstack_ipv6=bare == "::"
        )
    return socket.create_server((bare or "0.0.0.0", port))
