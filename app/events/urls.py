"""Which webhook URLs Modelgate agrees to call (server-side request forgery guard).

Only http and https. Link-local addresses (169.254.0.0/16, fe80::/10) and the cloud
metadata endpoints are refused unless ``webhook_allow_link_local`` is set: they hand
out instance credentials to whoever can make the server call them. Loopback and
private networks are allowed by default (on-premises receivers are common) and can be
refused with ``webhook_allow_private_networks=false``. Unspecified, multicast and
reserved addresses are always refused. The check runs when a webhook is created and
again before every delivery (the name may resolve elsewhere by then).

A delivery resolves the name once (:func:`pin`), checks every address it got, and then
connects to the first of them, sending the original name as ``Host`` and, for https, as
the TLS server name that the certificate is verified against. Resolving again to
connect would let a name that answered a public address to the check answer a loopback
or metadata one to the connection (DNS rebinding).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean
        "169.254.170.2",  # AWS ECS task credentials
        "fd00:ec2::254",  # AWS over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud
    )
)
METADATA_HOSTNAMES = frozenset({"metadata.google.internal", "metadata", "instance-data"})
_CGNAT = ipaddress.ip_network("100.64.0.0/10")


class UrlRefused(ValueError):
    """The URL may not be used as a webhook target; the message says why."""


class ResolvesToRefused(UrlRefused):
    """The URL's host name resolves (now) to an address the policy refuses: DNS decides,
    not the URL's text."""


class Unresolvable(UrlRefused):
    """The URL's host name resolves to no address (now): a delivery cannot go out."""


@dataclass(frozen=True)
class UrlPolicy:
    allow_private_networks: bool = True
    allow_link_local: bool = False


def check_address(address: IPAddress, policy: UrlPolicy) -> None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address in METADATA_ADDRESSES or address.is_link_local:
        if not policy.allow_link_local:
            raise UrlRefused(
                f"{address} is a link-local or cloud metadata address "
                "(set MODELGATE_WEBHOOK_ALLOW_LINK_LOCAL=true to allow it)"
            )
        return
    if address.is_unspecified or address.is_multicast:
        raise UrlRefused(f"{address} is not a unicast address a webhook can be sent to")
    private = address.is_loopback or address.is_private or address in _CGNAT
    if address.is_reserved and not private:  # ::1 sits in IPv6's reserved ::/8
        raise UrlRefused(f"{address} is not a unicast address a webhook can be sent to")
    if private and not policy.allow_private_networks:
        raise UrlRefused(
            f"{address} is a loopback or private address "
            "(MODELGATE_WEBHOOK_ALLOW_PRIVATE_NETWORKS is false)"
        )


Resolver = Callable[[str, int], list[IPAddress]]
"""``(host, port) -> addresses``: :func:`resolve`, or a stand-in in tests."""


def resolve(host: str, port: int) -> list[IPAddress]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise Unresolvable(f"the host {host!r} does not resolve: {exc}") from None
    addresses: list[IPAddress] = []
    for info in infos:
        raw = info[4][0]
        addresses.append(ipaddress.ip_address(str(raw).split("%", 1)[0]))
    return addresses


@dataclass(frozen=True)
class Pinned:
    """Where a delivery connects: ``url`` with its host replaced by the checked address,
    the ``Host`` header naming the original host, and the TLS server name (https)."""

    url: str
    host_header: str
    server_name: str | None
    address: IPAddress


def _parts(url: str, policy: UrlPolicy) -> tuple[str, str, int]:
    """Scheme, host and port of an allowed-looking URL (everything but its addresses)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UrlRefused(f"not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise UrlRefused("only http and https URLs can receive webhooks")
    host = parts.hostname
    if not host:
        raise UrlRefused("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise UrlRefused(
            "credentials in the URL are refused (URLs are shown and logged); "
            "authenticate deliveries by their signature"
        )
    if parts.fragment:
        raise UrlRefused("the URL must not have a fragment")
    if host.lower().rstrip(".") in METADATA_HOSTNAMES and not policy.allow_link_local:
        raise UrlRefused(f"{host} is a cloud metadata host")
    return parts.scheme, host, port or (443 if parts.scheme == "https" else 80)


def _literal(host: str) -> IPAddress | None:
    """The address a host written as an IP literal stands for, decided without DNS: also
    the IPv4 forms resolvers accept (2852039166, 0xA9FEA9FE, 0251.0376.0251.0376)."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if host[:1].isdigit() and all(c in "0123456789abcdefABCDEFxX." for c in host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def checked_addresses(
    url: str, policy: UrlPolicy, *, resolver: Resolver = resolve
) -> list[IPAddress]:
    """The addresses ``url`` leads to, each checked (one resolution); :class:`UrlRefused`
    when any of them, or the URL itself, is not allowed."""
    _, host, port = _parts(url, policy)
    literal = _literal(host)
    addresses = [literal] if literal is not None else resolver(host, port)
    if not addresses:
        raise Unresolvable(f"the host {host!r} resolves to no address")
    for address in addresses:
        check_address(address, policy)
    return addresses


def check_url(url: str, policy: UrlPolicy, *, resolve_host: bool = True) -> None:
    """Raise :class:`UrlRefused` unless ``url`` is an allowed webhook target.

    A name that does not resolve (now) is allowed: DNS changes, and every delivery
    resolves and checks again at send time (:func:`pin`), failing and retrying until the
    name leads to an allowed address. A name that resolves to a refused address is
    refused (decision 0025)."""
    _, host, _ = _parts(url, policy)
    if resolve_host:
        try:
            checked_addresses(url, policy)
        except Unresolvable:
            return
        except UrlRefused as exc:
            if _literal(host) is None:
                raise ResolvesToRefused(
                    f"the host {host!r} resolves to a refused address: {exc}"
                ) from None
            raise
        return
    literal = _literal(host)
    if literal is not None:
        check_address(literal, policy)


def pin(url: str, policy: UrlPolicy, *, resolver: Resolver = resolve) -> Pinned:
    """Resolve and check once, and say how to connect to the address that was checked."""
    parts = urlsplit(url)
    scheme, host, port = _parts(url, policy)
    address = checked_addresses(url, policy, resolver=resolver)[0]
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    shown = f"[{address}]" if isinstance(address, ipaddress.IPv6Address) else str(address)
    default_port = 443 if scheme == "https" else 80
    netloc = shown if parts.port is None else f"{shown}:{parts.port}"
    # The Host header as the client would have sent it: the name as written (IPv6
    # literals in brackets), with the port only when it is not the scheme's default.
    named = f"[{host}]" if ":" in host else host
    host_header = named if port == default_port else f"{named}:{port}"
    literal = _literal(host) is not None
    return Pinned(
        url=parts._replace(netloc=netloc).geturl(),
        host_header=host_header,
        server_name=host if scheme == "https" and not literal else None,
        address=address,
    )
