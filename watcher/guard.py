"""The address guard: watcher connects only to public addresses it has resolved and checked itself.

Feed and article URLs come from strangers, so a URL may point at loopback, the LAN or the cloud metadata
service (docs/reliability.md, "Where it may connect"). Checking the URL's host string is not enough: names
resolve to anything, IPv4 has many spellings (`2130706433`, `0x7f.1`, `127.1`), IPv6 can wrap IPv4
(`::ffff:127.0.0.1`, `64:ff9b::7f00:1`, `2002:7f00:1::`), and a name's DNS answer can change between a
check and the connect. So the check lives where the socket is opened: `GuardedBackend` is an httpcore
network backend that resolves the host once, checks every address, and connects to the checked IP literal.
TLS still verifies the original hostname: httpcore passes it to `start_tls` as `server_hostname`
(httpcore/_async/connection.py, `_connect`), independently of the host given to `connect_tcp`.

The table of refused networks is written out here on purpose: `ipaddress`'s is_private/is_global flags
changed between Python versions and miss some of these ranges.

This module is part of the fetch seam (fetch.py installs the backend); it imports httpcore, never httpx.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import select
import socket
import typing
from collections.abc import Awaitable, Callable, Iterable, Sequence

import httpcore

from .errors import BlockedAddressError, FetchError
from .unreachable import Remembered

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[list[str]]]

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network

# IPv4 space that is not the public internet (IANA special-purpose registry, RFC 6890 and successors).
BLOCKED_V4: tuple[tuple[str, IPNetwork], ...] = (
    ("'this network'", _V4("0.0.0.0/8")),
    ("private (RFC 1918)", _V4("10.0.0.0/8")),
    ("carrier-grade NAT", _V4("100.64.0.0/10")),
    ("loopback", _V4("127.0.0.0/8")),
    ("link-local (cloud metadata)", _V4("169.254.0.0/16")),
    # Azure's platform endpoint (WireServer: DHCP, DNS, instance health, VM agent settings) is a public address
    # that only means something from inside Azure; nothing a feed links to lives there.
    ("Azure platform endpoint", _V4("168.63.129.16/32")),
    ("private (RFC 1918)", _V4("172.16.0.0/12")),
    ("IETF protocol assignments", _V4("192.0.0.0/24")),
    ("documentation", _V4("192.0.2.0/24")),
    ("6to4 relay anycast", _V4("192.88.99.0/24")),
    ("private (RFC 1918)", _V4("192.168.0.0/16")),
    ("benchmarking", _V4("198.18.0.0/15")),
    ("documentation", _V4("198.51.100.0/24")),
    ("documentation", _V4("203.0.113.0/24")),
    ("multicast", _V4("224.0.0.0/4")),
    ("reserved or broadcast", _V4("240.0.0.0/4")),
)

# Inside 2000::/3 (the only IPv6 space allocated for global unicast) these are still not public hosts.
BLOCKED_V6: tuple[tuple[str, IPNetwork], ...] = (
    ("benchmarking", _V6("2001:2::/48")),
    ("ORCHID", _V6("2001:10::/28")),
    ("ORCHIDv2", _V6("2001:20::/28")),
    ("documentation", _V6("2001:db8::/32")),
    ("documentation", _V6("3fff::/20")),
)
_GLOBAL_UNICAST_V6 = _V6("2000::/3")
# Everything outside 2000::/3 is refused, with a precise name where we have one.
_NAMED_NON_GLOBAL_V6: tuple[tuple[str, IPNetwork], ...] = (
    ("unspecified", _V6("::/128")),
    ("loopback", _V6("::1/128")),
    ("IPv4-compatible (deprecated)", _V6("::/96")),
    ("IPv4-translated (SIIT)", _V6("::ffff:0:0:0/96")),
    ("local-use NAT64", _V6("64:ff9b:1::/48")),
    ("discard-only", _V6("100::/64")),
    ("unique-local", _V6("fc00::/7")),
    ("link-local", _V6("fe80::/10")),
    ("site-local (deprecated)", _V6("fec0::/10")),
    ("multicast", _V6("ff00::/8")),
)
_NAT64 = _V6("64:ff9b::/96")  # RFC 6052 well-known prefix: the last 32 bits are the IPv4 destination
_TEREDO = _V6("2001::/32")
_SIXTOFOUR = _V6("2002::/16")

# What inet_aton (and so getaddrinfo) reads as an IPv4 literal: 1 to 4 parts, decimal, octal or hex.
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}$")


def parse_networks(cidrs: Iterable[str]) -> tuple[IPNetwork, ...]:
    """`allow_networks` from the config; config.py has already validated them, strict=False forgives host bits."""
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def literal_address(host: str) -> IPAddress | None:
    """The address a host string denotes by itself, without DNS; None for a name.

    Accepts every spelling the C resolver accepts for IPv4 (`2130706433`, `0177.0.0.1`, `0x7f.1`, `127.1`),
    so an odd spelling is checked as the address it will really reach.
    """
    h = host.strip("[]").lower()
    if h.endswith(".") and not h.endswith(".."):
        h = h[:-1]  # a trailing dot makes a name absolute; "127.0.0.1." would otherwise go to DNS
    try:
        return ipaddress.ip_address(h)
    except ValueError:
        pass
    if _NUMERIC_HOST.match(h):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(h))
        except OSError:
            return None
    return None


def _refused_v4(address: ipaddress.IPv4Address) -> str | None:
    for name, net in BLOCKED_V4:
        if address in net:
            return name
    return None


def _embedded_v4(address: ipaddress.IPv6Address) -> list[tuple[str, ipaddress.IPv4Address]]:
    """IPv4 addresses a v6 address will deliver to (NAT64, 6to4, Teredo server and client)."""
    found = []
    if address in _NAT64:
        found.append(("NAT64", ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)))
    if address in _SIXTOFOUR and address.sixtofour is not None:
        found.append(("6to4", address.sixtofour))
    if address in _TEREDO and address.teredo is not None:
        server, client = address.teredo
        found += [("Teredo", server), ("Teredo", client)]
    return found


def refusal(address: IPAddress, allow: Sequence[IPNetwork] = ()) -> str | None:
    """Why the guard refuses `address` (e.g. "loopback"), or None when it may be connected to."""
    if isinstance(address, ipaddress.IPv6Address):
        address = ipaddress.IPv6Address(int(address))  # drop any %scope: it does not change the range
        if address.ipv4_mapped is not None:
            # ::ffff:a.b.c.d is the IPv4 host itself on a dual-stack socket: judge it exactly as a.b.c.d.
            return refusal(address.ipv4_mapped, allow)
    if any(address in net for net in allow):
        return None
    if isinstance(address, ipaddress.IPv4Address):
        return _refused_v4(address)
    if address in _NAT64:
        inner = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        reason = _refused_v4(inner)
        return f"NAT64 form of {inner}, {reason}" if reason else None
    if address not in _GLOBAL_UNICAST_V6:
        for name, net in _NAMED_NON_GLOBAL_V6:
            if address in net:
                return name
        return "not global unicast IPv6"
    for name, net in BLOCKED_V6:
        if address in net:
            return name
    for form, inner in _embedded_v4(address):
        reason = _refused_v4(inner)
        if reason:
            return f"{form} form of {inner}, {reason}"
    return None


_LOOPBACKS = (ipaddress.IPv4Address("127.0.0.1"), ipaddress.IPv6Address("::1"))


def _is_loopback_name(host: str) -> bool:
    name = host.strip("[]").lower().rstrip(".")
    return name == "localhost" or name.endswith(".localhost")


def _allowed_loopbacks(allow: Sequence[IPNetwork]) -> list[IPAddress]:
    """The loopback addresses a localhost name may reach: those the allow list opens (an allowed network allows
    its names)."""
    return [address for address in _LOOPBACKS if refusal(address, allow) is None]


def _network_to_allow(address: IPAddress) -> str:
    """The `allow_networks` entry that would let `address` through: its whole reserved range when we know it."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    tables = BLOCKED_V4 if isinstance(address, ipaddress.IPv4Address) else (*BLOCKED_V6, *_NAMED_NON_GLOBAL_V6)
    for _, net in tables:
        if address in net and net.prefixlen > 0:
            return str(net)
    return str(ipaddress.ip_network(address))


def _blocked(host: str, message: str, address: IPAddress) -> BlockedAddressError:
    """Every refusal an operator can lift says how: the setting and the value to put in it."""
    return BlockedAddressError(
        host,
        f'{message}; to fetch it, allow its network in the config: [fetch] allow_networks = ["{_network_to_allow(address)}"]',
    )


def check_host(host: str, allow: Sequence[IPNetwork] = ()) -> None:
    """URL-level check, before any DNS: refuse localhost names, odd digits and literal refused addresses."""
    h = host.strip("[]").lower()
    if not h:
        raise BlockedAddressError(host, "the URL has no host")
    if any(ch.isdigit() and not ch.isascii() for ch in h):
        # IDNA would fold fullwidth or Arabic-Indic digits into an IPv4 literal; no honest host needs them.
        raise BlockedAddressError(host, f"host {host!r} contains non-ASCII digits")
    if _is_loopback_name(h):
        # RFC 6761: these names are loopback by definition; never even ask a resolver about them. They are as
        # allowed as the loopback network is.
        if not _allowed_loopbacks(allow):
            raise _blocked(host, f"{host} is a loopback name", _LOOPBACKS[0])
        return
    address = literal_address(h)
    if address is not None:
        reason = refusal(address, allow)
        if reason:
            raise _blocked(
                host, f"{host} is {reason}" if str(address) == h else f"{host} is {address}, {reason}", address
            )


async def _system_resolve(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore backend that resolves once, checks every address, and connects only to a checked IP.

    `resolve` is injectable so tests can play a DNS server (a name that answers loopback, an answer that
    changes between two lookups) without touching the network.
    """

    def __init__(
        self, allow: Sequence[IPNetwork] = (), resolve: Resolver | None = None, memory: Remembered | None = None
    ) -> None:
        """`memory`, shared by the backends of one fetcher, remembers answers and failures a short while
        (unreachable.py): a name that does not resolve, or a host that refuses, fails its next pages at once."""
        self._allow = tuple(allow)
        self._resolve = resolve or _system_resolve
        self._inner = httpcore.AnyIOBackend()
        self._memory = memory

    async def addresses(self, host: str, port: int, timeout: float | None = None) -> list[IPAddress]:
        """Every address `host` stands for, each checked; raises BlockedAddressError if any is refused."""
        check_host(host, self._allow)
        if _is_loopback_name(host):
            return _allowed_loopbacks(self._allow)  # never DNS (RFC 6761); check_host refused it if none is allowed
        literal = literal_address(host)
        if literal is not None:
            return [literal]
        if self._memory is None:
            return await self._lookup(host, port, timeout)
        key = ("dns", host.lower())
        recalled = self._memory.failure(key)
        if recalled is not None:
            error, age = recalled
            message = getattr(error, "message", str(error))
            raise FetchError(host, f"{message} ({age:.0f} s ago; not asked again yet)", kind="dns")
        found = await self._memory.get(
            key,
            lambda: self._lookup(host, port, timeout),
            keep=lambda e: getattr(e, "kind", "") == "dns" or isinstance(e, httpcore.ConnectTimeout),
        )
        for address in found:  # an answer kept a while is checked again against today's allow list
            reason = refusal(address, self._allow)
            if reason:
                raise _blocked(host, f"{host} resolves to {address}, {reason}", address)
        return found

    async def check_reachable(self, host: str, port: int, timeout: float | None = None) -> None:
        """Resolve and check `host` now, and fail at once if it refused connections a moment ago.

        For a caller that is about to take a shared slot (the pipeline's pages in flight): waiting for a slow or
        failing lookup must not hold one. Raises FetchError (kinds dns, connect, blocked)."""
        try:
            await self.addresses(host, port, timeout)
        except httpcore.ConnectTimeout as e:
            raise FetchError(host, str(e), kind="dns") from e
        recalled = self._memory.failure(("connect", host.lower(), port)) if self._memory else None
        if recalled is not None:
            raise FetchError(host, f"{recalled[0]} ({recalled[1]:.0f} s ago; not tried again yet)", kind="connect")

    async def _lookup(self, host: str, port: int, timeout: float | None) -> list[IPAddress]:
        try:
            async with asyncio.timeout(timeout):
                answers = await self._resolve(host, port)
        except TimeoutError as e:
            raise httpcore.ConnectTimeout(f"resolving {host} took more than {timeout} s") from e
        except socket.gaierror as e:
            # EAI_AGAIN ("temporary failure") is what an offline machine gets: kind "dns" lets the
            # pipeline tell "offline" from "this feed is broken".
            raise FetchError(host, f"cannot resolve {host} ({e.strerror})", kind="dns") from e
        found: list[IPAddress] = []
        for text in answers:
            address = ipaddress.ip_address(text)
            if address not in found:
                found.append(address)
        if not found:
            raise FetchError(host, f"cannot resolve {host} (no addresses)", kind="dns")
        for address in found:
            # One refused answer refuses the name: an attacker's DNS mixes a public and a private answer.
            reason = refusal(address, self._allow)
            if reason:
                raise _blocked(host, f"{host} resolves to {address}, {reason}", address)
        return found

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        key = ("connect", host.lower(), port)
        recalled = self._memory.failure(key) if self._memory else None
        if recalled is not None:
            raise httpcore.ConnectError(f"{recalled[0]} ({recalled[1]:.0f} s ago; not tried again yet)")
        error: Exception | None = None
        for address in await self.addresses(host, port, timeout):
            try:
                # An IP literal: anyio connects without another lookup, so DNS cannot change the answer now.
                stream = await self._inner.connect_tcp(
                    str(address), port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
                return _KeptSocketStream(stream)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as e:
                error = e  # try the next checked address, as getaddrinfo-based connects do
        assert error is not None
        if self._memory is not None:
            self._memory.remember_failure(key, error)  # the host's other pages fail at once for a while
        raise error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise BlockedAddressError(path, "unix sockets are never fetched")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _KeptSocketStream(httpcore.AsyncNetworkStream):
    """httpcore's stream with its socket looked up once: before and after every request httpcore asks each idle
    pooled connection whether the server hung up, and anyio answered with a getpeername() system call each time.
    The poller that answers is made once too: a pool of N idle connections is asked 2N times a request."""

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner
        self._socket = inner.get_extra_info("socket")
        self._poller = select.poll()
        if self._socket is not None and self._socket.fileno() >= 0:
            self._poller.register(self._socket.fileno(), select.POLLIN)

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self, ssl_context: typing.Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        return _KeptSocketStream(await self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> typing.Any:
        if info == "socket":
            return self._socket
        if info == "is_readable":
            return self._readable()
        return self._inner.get_extra_info(info)

    def _readable(self) -> bool:
        """Whether a read would return at once (data, or the end a server's hang-up leaves); a gone socket is.
        The socket is asked first: once closed its number may be another socket's, which the poller would watch."""
        if self._socket is None or self._socket.fileno() < 0:
            return True
        return bool(self._poller.poll(0))


def install_guard(client: object, backend: GuardedBackend) -> None:
    """Put the guard under an httpx.AsyncClient's direct connections (fetch.py calls this for each client).

    httpx 0.28 has no public hook for an httpcore network backend, so we set the one httpcore's
    AsyncConnectionPool hands to every new connection. If a future httpx moves it, we refuse to start
    rather than run unguarded (and the tests that fetch loopback without an allow list fail).
    Proxy transports (use_env_proxy) are left alone: the proxy resolves names, not us.
    """
    pool = getattr(getattr(client, "_transport", None), "_pool", None)
    if not isinstance(pool, httpcore.AsyncConnectionPool) or not hasattr(pool, "_network_backend"):
        raise RuntimeError("cannot install the address guard on this httpx version")
    pool._network_backend = backend
