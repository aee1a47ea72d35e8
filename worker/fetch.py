"""A guarded HTTP client for the links people paste: it only ever connects to public addresses.

Server-side request forgery is the risk: a link to ``http://127.0.0.1:6379/``, ``http://169.254.169.254/`` or
a public name that resolves (or redirects) to an internal address must not make the worker talk to it.

- Only ``http`` and ``https`` URLs, without credentials in them.
- The connection itself is guarded, not just the URL: :class:`GuardedBackend` (an httpcore network backend)
  resolves the host, refuses the connection if ANY of its addresses is loopback, private, link-local,
  carrier-grade NAT, multicast, reserved, unspecified or otherwise not globally routable (IPv4 and IPv6, with
  IPv4-mapped, 6to4, Teredo and NAT64 addresses judged by the IPv4 address they carry), and then connects to
  the very address it checked. There is no second DNS lookup, hence no DNS-rebinding window; TLS still
  verifies the certificate against, and sends SNI for, the URL's host name (httpcore passes it to start_tls),
  and the Host header is the URL's. Odd spellings (``http://2130706433/``, ``0x7f.1``, ``0177.0.0.1``) resolve
  to the address they mean and are judged on it.
- Redirects are followed by hand, at most :data:`MAX_REDIRECTS`, each hop through the same guard.
- One deadline for the whole fetch (connect, TLS, every read, every hop): no read may wait past it.
- A Content-Length above the byte limit is refused before reading; a body without one stops at the limit.
- Only HTML and plain text; the bytes are decoded from the header's charset, a BOM or ``<meta charset>``,
  else by trying UTF-8, then Shift_JIS (cp932) and EUC-JP.
- ``allowed_networks`` (FETCH_ALLOWED_NETWORKS) lets an intranet deployment (and the tests) reach named
  private networks.
"""

from __future__ import annotations

import codecs
import ipaddress
import re
import socket
import ssl
import time
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import httpcore
import httpx

from common.exceptions import LinkRefusedError, LinkUnreachableError, UnsupportedContentError
from common.settings import IPNetwork, Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_REDIRECTS = 5
USER_AGENT = "newsbot/0.1 (+Slack news classifier; fetches only links users post)"
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_TEXT_TYPES = frozenset({"text/plain"})
_CHUNK = 64 * 1024
# Not globally routable although Python's ipaddress does not flag all of them in every version.
_EXTRA_BLOCKED: tuple[IPNetwork, ...] = (
    ipaddress.ip_network("100.64.0.0/10"),  # carrier-grade NAT (RFC 6598)
    ipaddress.ip_network("192.0.0.0/24"),  # IETF protocol assignments
    ipaddress.ip_network("198.18.0.0/15"),  # benchmarking
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
# What people (and servers) call the Japanese charsets, mapped to the Python codec that reads them best.
_CHARSET_ALIASES = {
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "ms_kanji": "cp932",
    "windows-31j": "cp932",
    "euc-jp": "euc_jp",
    "x-euc-jp": "euc_jp",
}


def embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (IPv4-mapped, 6to4, Teredo client, NAT64), if any."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public(ip: IPAddress) -> bool:
    """True for a globally routable unicast address; False for every internal or special one."""
    inner = embedded_ipv4(ip)
    if inner is not None:  # IPv4-mapped, 6to4, Teredo, NAT64: the IPv4 address it leads to decides
        return is_public(inner)
    if any(ip in net for net in _EXTRA_BLOCKED if net.version == ip.version):
        return False
    return not (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or (isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local)
        or not ip.is_global
    )


class AddressPolicy:
    """Which addresses the fetcher may connect to: public ones, and those in ``allowed_networks``."""

    def __init__(self, allowed_networks: Sequence[IPNetwork] = ()) -> None:
        self.allowed_networks = tuple(allowed_networks)

    def allows(self, ip: IPAddress) -> bool:
        inner = embedded_ipv4(ip)
        for candidate in (ip, inner) if inner is not None else (ip,):
            if any(candidate.version == net.version and candidate in net for net in self.allowed_networks):
                return True
        return is_public(ip)

    def resolve(self, host: str, port: int) -> list[IPAddress]:
        """Every address ``host`` resolves to; raises :class:`LinkRefusedError` unless all of them are allowed."""
        try:
            infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise httpcore.ConnectError(f"cannot resolve {host!r}: {exc}") from exc
        addresses: list[IPAddress] = []
        for info in infos:
            ip = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
            if ip not in addresses:
                addresses.append(ip)
        refused = [ip for ip in addresses if not self.allows(ip)]
        if refused or not addresses:
            raise _RefusedAddress(f"{host} resolves to a refused address {refused[0] if refused else '(none)'}")
        return addresses


class _RefusedAddress(httpcore.ConnectError):
    """Raised inside httpcore when the guard refuses an address; turned into LinkRefusedError by the fetcher."""


class _DeadlineStream(httpcore.NetworkStream):
    """A network stream whose every operation waits at most until the fetch's deadline."""

    def __init__(self, inner: httpcore.NetworkStream, deadline: float) -> None:
        self._inner = inner
        self._deadline = deadline

    def _timeout(self, timeout: float | None, error: type[Exception]) -> float:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise error("the fetch's total time is used up")
        return left if timeout is None else min(timeout, left)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._timeout(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._timeout(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        # server_hostname is the URL's host: SNI and certificate checks use the name, not the pinned address.
        inner = self._inner.start_tls(ssl_context, server_hostname, self._timeout(timeout, httpcore.ConnectTimeout))
        return _DeadlineStream(inner, self._deadline)

    def get_extra_info(self, info: str) -> typing.Any:
        return self._inner.get_extra_info(info)


class GuardedBackend(httpcore.NetworkBackend):
    """Resolves, checks, and connects to the checked address itself (no second lookup)."""

    def __init__(self, policy: AddressPolicy, deadline: float) -> None:
        self.policy = policy
        self.deadline = deadline
        self._tcp = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = self.policy.resolve(host, port)
        last: Exception | None = None
        for ip in addresses:
            left = self.deadline - time.monotonic()
            if left <= 0:
                break
            try:
                stream = self._tcp.connect_tcp(str(ip), port, min(timeout or left, left), local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
                continue
            return _DeadlineStream(stream, self.deadline)
        if last is not None:
            raise last
        raise httpcore.ConnectTimeout("the fetch's total time is used up")

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        raise _RefusedAddress("unix sockets are never fetched")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class GuardedTransport(httpx.HTTPTransport):
    """httpx's own transport with its connection pool built on :class:`GuardedBackend`."""

    def __init__(self, backend: GuardedBackend) -> None:
        super().__init__(trust_env=False)
        # HTTPTransport offers no network_backend argument; its pool is rebuilt here with the guarded backend
        # (same TLS context as httpx's default, no proxies, no keep-alive beyond this one fetch).
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=4,
            network_backend=backend,
        )


@dataclass(frozen=True, slots=True)
class FetchedPage:
    """A fetched page: where it ended up, what it is, and its text (decoded)."""

    url: str
    final_url: str
    content_type: str
    charset: str
    text: str
    truncated: bool
    size: int = 0  # bytes read

    @property
    def is_html(self) -> bool:
        return self.content_type in _HTML_TYPES


def normalise_charset(name: str | None) -> str | None:
    """A Python codec name for a declared charset, or None if it is unknown."""
    if not name:
        return None
    name = name.strip().strip("\"'").lower()
    name = _CHARSET_ALIASES.get(name, name)
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def decode_body(body: bytes, header_charset: str | None) -> tuple[str, str]:
    """Decode a page: header charset, BOM, ``<meta charset>``, then UTF-8 / Shift_JIS / EUC-JP by trial."""
    if body.startswith(codecs.BOM_UTF8):
        return body[len(codecs.BOM_UTF8) :].decode("utf-8", "replace"), "utf-8"
    declared = [normalise_charset(header_charset)]
    match = _META_CHARSET.search(body[:8192])
    if match:
        declared.append(normalise_charset(match.group(1).decode("ascii", "ignore")))
    for charset in declared:
        if charset:
            return body.decode(charset, "replace"), charset
    for charset in ("utf-8", "cp932", "euc_jp"):
        try:
            return body.decode(charset), charset
        except UnicodeDecodeError:
            continue
    return body.decode("utf-8", "replace"), "utf-8"


class GuardedFetcher:
    """Fetches one linked page at a time within the guard; see the module docstring."""

    def __init__(
        self,
        allowed_networks: Sequence[IPNetwork] = (),
        *,
        timeout_s: float = 10.0,
        max_bytes: int = 5 * 1024 * 1024,
        max_redirects: int = MAX_REDIRECTS,
    ) -> None:
        self.policy = AddressPolicy(allowed_networks)
        self.timeout_s = timeout_s
        self.max_bytes = max_bytes
        self.max_redirects = max_redirects

    @classmethod
    def from_settings(cls, settings: Settings) -> GuardedFetcher:
        return cls(
            settings.fetch_allowed_networks, timeout_s=settings.fetch_timeout_s, max_bytes=settings.fetch_max_bytes
        )

    @staticmethod
    def check_url(url: str) -> httpx.URL:
        """Parse ``url``; raise :class:`LinkRefusedError` unless it is http(s) with a host and no credentials."""
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError, ValueError) as exc:
            raise LinkRefusedError(url, f"not a valid URL: {exc}") from None
        if parsed.scheme not in ("http", "https"):
            raise LinkRefusedError(url, f"scheme {parsed.scheme!r} is not http or https")
        if not parsed.host:
            raise LinkRefusedError(url, "no host")
        if parsed.userinfo:
            raise LinkRefusedError(url, "credentials in the URL")
        return parsed

    def fetch(self, url: str) -> FetchedPage:
        """The page at ``url``; raises a :class:`~common.exceptions.LinkError` subclass with the reason."""
        deadline = time.monotonic() + self.timeout_s
        target = self.check_url(url)
        transport = GuardedTransport(GuardedBackend(self.policy, deadline))
        timeout = httpx.Timeout(self.timeout_s)
        headers = {
            "User-Agent": USER_AGENT,
            "Accept": "text/html,application/xhtml+xml,text/plain;q=0.9",
            # Uncompressed, so the byte limit counts what is held in memory (no gzip bombs).
            "Accept-Encoding": "identity",
        }
        with httpx.Client(transport=transport, timeout=timeout, headers=headers, trust_env=False) as client:
            try:
                for _hop in range(self.max_redirects + 1):
                    with client.stream("GET", target) as response:
                        if response.is_redirect:
                            location = response.headers.get("location", "")
                            target = self.check_url(str(response.url.join(location)))
                            continue
                        return self._read(url, response, deadline)
            except httpx.ConnectError as exc:
                # httpx re-raises httpcore's errors as its own, the original as the cause.
                if isinstance(exc.__cause__, _RefusedAddress):
                    raise LinkRefusedError(url, str(exc.__cause__)) from None
                raise LinkUnreachableError(url, f"connection failed: {exc}") from None
            except httpx.TimeoutException:
                raise LinkUnreachableError(url, f"no complete answer within {self.timeout_s:g} s") from None
            except httpx.HTTPError as exc:
                raise LinkUnreachableError(url, f"{type(exc).__name__}: {exc}") from None
        raise LinkUnreachableError(url, f"more than {self.max_redirects} redirects")

    def _read(self, url: str, response: httpx.Response, deadline: float) -> FetchedPage:
        if response.status_code >= 400:
            raise LinkUnreachableError(url, f"HTTP {response.status_code}")
        content_type, _, params = response.headers.get("content-type", "").partition(";")
        content_type = content_type.strip().lower()
        if content_type not in _HTML_TYPES | _TEXT_TYPES:
            raise UnsupportedContentError(url, f"content type {content_type or '(none)'!r}")
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_bytes:
            raise UnsupportedContentError(url, f"Content-Length {length} is over {self.max_bytes} bytes")
        body = bytearray()
        truncated = False
        for chunk in response.iter_bytes(_CHUNK):
            body += chunk
            if len(body) > self.max_bytes:
                del body[self.max_bytes :]
                truncated = True
                break
            if time.monotonic() > deadline:
                raise httpx.ReadTimeout("the fetch's total time is used up")
        charset_match = re.search(r"charset\s*=\s*([^;\s]+)", params, re.IGNORECASE)
        text, charset = decode_body(bytes(body), charset_match.group(1) if charset_match else None)
        if truncated:
            text = text.rstrip("\ufffd")  # a character cut in two at the limit
        return FetchedPage(
            url=url,
            final_url=str(response.url),
            content_type=content_type,
            charset=charset,
            text=text,
            truncated=truncated,
            size=len(body),
        )
