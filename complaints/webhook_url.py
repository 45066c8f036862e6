"""Which webhook addresses clipgate may post to: http(s) only, and never a host that is or
resolves to a private, loopback, link-local, reserved or multicast address, so an account's
webhook cannot reach into the operator's own network (SSRF). Checked when the address is set
and again before each post, since what a name resolves to can change; the post then connects to
the very address that was checked (`pinned_transport`), so a name that answers a public address
to the check and a private one to the second lookup (DNS rebinding) never reaches the private one."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from clipgate.errors import BadInput
from clipgate.settings import Settings

MAX_LEN = 2000


class UnsafeWebhook(BadInput):
    pass


def _public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not (ip.is_multicast or ip.is_unspecified or ip.is_reserved)


def check_webhook_url(url: str, settings: Settings, *, must_resolve: bool) -> str | None:
    """Raise UnsafeWebhook (a BadInput) for an address clipgate must not post to; otherwise the
    IP address that was checked, to connect to (None when the name does not resolve yet, or
    does not resolve at all with CLIPGATE_WEBHOOK_ALLOW_PRIVATE, which skips the address check
    but still pins the address resolved). must_resolve: a host name that does not resolve is
    refused too (at send time); when the address is set, a name that does not resolve yet is
    allowed and checked again on sending."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        raise UnsafeWebhook("the webhook address is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not host or len(url) > MAX_LEN:
        raise UnsafeWebhook("the webhook address must start with http:// or https:// and name "
                            "a host")
    try:
        infos = socket.getaddrinfo(host, port or (443 if parts.scheme == "https" else 80),
                                   proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        if must_resolve and not settings.webhook_allow_private:
            raise UnsafeWebhook(f"the webhook host {host} does not resolve") from None
        return None
    for info in infos if not settings.webhook_allow_private else ():
        ip = ipaddress.ip_address(info[4][0].split("%")[0])
        if not _public(ip):
            raise UnsafeWebhook(f"the webhook host {host} is a private, local or reserved "
                                f"address ({ip}); webhooks go to public addresses only")
    if not infos:
        raise UnsafeWebhook(f"the webhook host {host} does not resolve")
    return infos[0][4][0]


class _PinnedBackend(httpcore.SyncBackend):
    """Connects to one IP address whatever host the URL names. TLS still checks the URL's host
    name (httpcore sends it as SNI and verifies the certificate against it)."""

    def __init__(self, ip: str) -> None:
        self.ip = ip

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None, socket_options: Any = None
                    ) -> httpcore.NetworkStream:
        return super().connect_tcp(self.ip, port, timeout=timeout, local_address=local_address,
                                   socket_options=socket_options)


def pinned_transport(ip: str | None) -> httpx.HTTPTransport:
    """An httpx transport that connects to `ip` (from check_webhook_url), never resolving the
    name again; a plain one when ip is None."""
    transport = httpx.HTTPTransport(trust_env=False)
    if ip is not None:
        # httpx has no option for the network backend: its pool is rebuilt with one.
        transport._pool = httpcore.ConnectionPool(ssl_context=httpx.create_ssl_context(),
                                                  network_backend=_PinnedBackend(ip))
    return transport
