"""Where a webhook may go: outbound requests are no way into our own network.

A URL is http or https. Unless WEBHOOK_ALLOW_PRIVATE_URLS (development's default), every address
its host resolves to must be a public unicast one: loopback, private networks, link-local
(where cloud metadata lives), shared address space, multicast and the unspecified address are
refused (and so is an IPv6 address carrying such an IPv4 one, which a NAT64 gateway on the
way connects to), when the URL is registered and again at each delivery, after that delivery's
own DNS lookup. The delivery then connects to the address that was checked, so a name that
resolves to something else a moment later (DNS rebinding) changes nothing.

Cloud metadata addresses are refused even where private URLs are allowed: no receiver lives
there, and on a cloud host they hand out its credentials.
"""

import ipaddress
import socket
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from shared.config import get_settings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

SCHEMES = ("http", "https")
URL_MAX_LENGTH = 2000
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean ...
        "169.254.170.2",  # AWS ECS task credentials
        "fd00:ec2::254",  # AWS over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud
    )
)


# How long registering a URL waits for its name to resolve (an attempt waits what is left of
# its own deadline).
RESOLVE_SECONDS = 5.0


class RefusedUrl(ValueError):
    """A URL no webhook may be sent to; the message says why."""


@dataclass(frozen=True)
class Target:
    """A URL checked for one request, and the address to connect to for it."""

    url: str
    host: str
    port: int
    address: Address


# IPv6 addresses that stand for an IPv4 one in their last 32 bits: NAT64's well-known prefix
# (a gateway on the way connects to the IPv4 address, AWS's among them), and the deprecated
# IPv4-compatible and IPv4-translated forms.
_CARRYING_IPV4 = tuple(
    ipaddress.ip_network(n) for n in ("64:ff9b::/96", "::/96", "::ffff:0:0:0/96")
)
# NAT64 prefixes of a network's own choosing, where the IPv4 address may sit anywhere: never
# a public receiver.
_LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")


def _unmapped(address: Address) -> Address:
    # ::ffff:127.0.0.1 reaches 127.0.0.1.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _carried(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address a gateway or the host reaches for this IPv6 one, if it stands for one
    (6to4 carries it in bits 16 to 48)."""
    if address.sixtofour is not None:
        return address.sixtofour
    if address in (ipaddress.IPv6Address("::"), ipaddress.IPv6Address("::1")):
        return None
    if any(address in network for network in _CARRYING_IPV4):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def problem(address: Address, allow_private: bool) -> str | None:
    """Why a webhook may not connect to this address, or None."""
    address = _unmapped(address)
    if isinstance(address, ipaddress.IPv6Address):
        carried = _carried(address)
        why = None if carried is None else problem(carried, allow_private)
        if why is not None:
            return f"which carries {carried}, {why}"
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if allow_private:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address in _LOCAL_NAT64:
            return "a local-use NAT64 address"
        if address.is_site_local:
            return "a site-local address"
    if address.is_global and not address.is_multicast:
        return None
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_private:
        return "a private address"
    return "not a public unicast address"


def check_form(url: str) -> tuple[str, int]:
    """The URL's host and port, if it is one a webhook may be sent to; RefusedUrl otherwise."""
    if len(url) > URL_MAX_LENGTH:
        raise RefusedUrl(f"the URL is longer than {URL_MAX_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise RefusedUrl(f"not a URL: {exc}") from None
    if parts.scheme not in SCHEMES:
        raise RefusedUrl("the URL must be http:// or https://")
    if not parts.hostname:
        raise RefusedUrl("the URL names no host")
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    return parts.hostname, port


def resolve(host: str, port: int, timeout: float) -> list[Address]:
    """Every address the host stands for (itself, when it is an address), looked up within
    `timeout`. The name's own DNS server decides how long getaddrinfo takes (the resolver's
    timeouts and retries: half a minute and more), and a URL's name is its owner's to choose:
    waited for, it held an API request's database connection, or a sender past its claim's
    lease. A lookup given up on finishes in its own thread, which nothing waits for."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    answer: list[list[Any] | BaseException] = []

    def look_up() -> None:
        try:
            answer.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except BaseException as exc:
            answer.append(exc)

    lookup = threading.Thread(target=look_up, name="webhook-dns", daemon=True)
    lookup.start()
    lookup.join(timeout)
    if not answer:
        raise RefusedUrl(f"{host} did not resolve within {timeout:g} s")
    infos = answer[0]
    if isinstance(infos, (OSError, UnicodeError)):  # gaierror, or a name IDNA cannot encode
        raise RefusedUrl(f"{host} does not resolve ({infos})") from None
    if isinstance(infos, BaseException):
        raise infos
    # A scope id (fe80::1%eth0) is cut: the address itself is what is checked.
    found = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    return list(dict.fromkeys(found))


def target(url: str, timeout: float | None = None) -> Target:
    """The URL checked now, with the address to connect to; RefusedUrl if any address its host
    resolves to is refused (a name that stands for a public and a private address is not
    one to send to), or if it does not resolve within `timeout` (RESOLVE_SECONDS)."""
    host, port = check_form(url)
    addresses = resolve(host, port, RESOLVE_SECONDS if timeout is None else timeout)
    allow_private = get_settings().webhook_allow_private_urls
    for address in addresses:
        why = problem(address, allow_private)
        if why is not None:
            raise RefusedUrl(f"{host} resolves to {address}, {why}")
    return Target(url=url, host=host, port=port, address=addresses[0])
