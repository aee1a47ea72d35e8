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
- One deadline for the whole fetch (DNS, connect, TLS, every read, every hop): no wait goes past it. The name
  is resolved in a helper thread that is given up on at the deadline (``getaddrinfo`` itself cannot be
  interrupted); the resolver is injectable (``resolver=``) for tests.
- A Content-Length above the byte limit is refused before reading; a body without one stops at the limit.
- Content-Encoding: the raw bytes are read, never httpx's decoded ones. One layer of ``gzip`` or ``deflate``
  is inflated here with a bounded decompressor, so the byte limit counts the decoded bytes (a 1 MB gzip bomb
  of 1 GiB stops at the limit after inflating just that much); any other or stacked encoding is refused.
- Only HTML and plain text; the bytes are decoded from the header's charset, a BOM or ``<meta charset>``,
  else by trying UTF-8, then Shift_JIS (cp932) and EUC-JP. A declared charset that is not a text encoding
  (``base64``, ``rot13``, ``zip``) or cannot read arbitrary bytes (``idna``, ``undefined``) is ignored.
- ``allowed_networks`` (FETCH_ALLOWED_NETWORKS) lets an intranet deployment (and the tests) reach named
  private networks.
"""

from __future__ import annotations

import codecs
import ipaddress
import re
import socket
import ssl
import threading
import time
import typing
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import httpcore
import httpx

from common.exceptions import LinkRefusedError, LinkUnreachableError, UnsupportedContentError
from common.settings import IPNetwork, Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# (host, port) -> the addresses it resolves to, as text; raises OSError when it cannot be resolved.
Resolver = Callable[[str, int], Sequence[str]]
T = typing.TypeVar("T")

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
# Text codecs that still cannot decode a web page: they fail on arbitrary bytes or read backslash escapes.
_NOT_PAGE_CODECS = frozenset({"idna", "punycode", "undefined", "unicode-escape", "raw-unicode-escape"})
# Content-Encodings inflated here (one layer at most); "identity" and none at all mean the raw bytes.
_INFLATED_ENCODINGS = frozenset({"gzip", "x-gzip", "deflate"})


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


def call_with_timeout(function: Callable[[], T], timeout_s: float, name: str) -> T:
    """``function()`` run in a daemon thread; :class:`TimeoutError` if it has not returned within ``timeout_s``.

    For work that cannot be interrupted (``getaddrinfo``, an HTML parser): the caller stops waiting at its
    deadline and the thread is left to finish on its own, so such work must be bounded in some other way too.
    Its exception, if it raises one, is re-raised here.
    """
    outcome: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(function())
        except BaseException as exc:  # noqa: BLE001 - handed over to the waiting thread, which re-raises it
            failure.append(exc)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    thread.join(max(timeout_s, 0.0))
    if thread.is_alive():
        raise TimeoutError(f"{name} did not finish within {timeout_s:.3g} s")
    if failure:
        raise failure[0]
    return outcome[0]


def system_resolver(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to, from the operating system's resolver."""
    return [str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


class AddressPolicy:
    """Which addresses the fetcher may connect to: public ones, and those in ``allowed_networks``."""

    def __init__(self, allowed_networks: Sequence[IPNetwork] = (), resolver: Resolver = system_resolver) -> None:
        self.allowed_networks = tuple(allowed_networks)
        self.resolver = resolver

    def allows(self, ip: IPAddress) -> bool:
        inner = embedded_ipv4(ip)
        for candidate in (ip, inner) if inner is not None else (ip,):
            if any(candidate.version == net.version and candidate in net for net in self.allowed_networks):
                return True
        return is_public(ip)

    def resolve(self, host: str, port: int, timeout_s: float | None = None) -> list[IPAddress]:
        """Every address ``host`` resolves to, within ``timeout_s``; refused (``_RefusedAddress``) unless all are
        allowed, ``httpcore.ConnectTimeout`` when the resolver is slower than that."""
        name = host.strip("[]")
        try:
            if timeout_s is None:
                found = self.resolver(name, port)
            else:
                found = call_with_timeout(lambda: self.resolver(name, port), timeout_s, f"resolve {name}")
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"resolving {host!r} took longer than the fetch's time") from exc
        except (OSError, UnicodeError, ValueError) as exc:
            raise httpcore.ConnectError(f"cannot resolve {host!r}: {exc}") from exc
        addresses: list[IPAddress] = []
        for text in found:
            try:
                ip = ipaddress.ip_address(str(text).split("%", 1)[0])
            except ValueError as exc:
                raise httpcore.ConnectError(f"cannot resolve {host!r}: odd address {text!r}") from exc
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
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise httpcore.ConnectTimeout("the fetch's total time is used up")
        addresses = self.policy.resolve(host, port, left)  # resolution counts against the deadline too
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
    """A Python codec name for a declared charset, or None if it is unknown or cannot decode a page.

    Only text encodings that read arbitrary bytes count: ``base64``, ``rot13``, ``hex``, ``zip`` (bytes-to-bytes
    codecs) and ``idna``, ``punycode``, ``undefined`` or the backslash-escape codecs are not page charsets.
    """
    if not name:
        return None
    name = name.strip().strip("\"'").lower()
    name = _CHARSET_ALIASES.get(name, name)
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError, TypeError):
        return None
    if not getattr(info, "_is_text_encoding", True) or info.name in _NOT_PAGE_CODECS:
        return None
    return info.name


def _decode(body: bytes, charset: str) -> str | None:
    """``body`` read as ``charset`` with replacement characters, or None if the codec fails anyway."""
    try:
        return body.decode(charset, "replace")
    except (LookupError, UnicodeError, ValueError, TypeError):
        return None


def decode_body(body: bytes, header_charset: str | None) -> tuple[str, str]:
    """Decode a page: header charset, BOM, ``<meta charset>``, then UTF-8 / Shift_JIS / EUC-JP by trial.

    Never raises: a declared charset that is unknown or not a text encoding is passed over.
    """
    if body.startswith(codecs.BOM_UTF8):
        return body[len(codecs.BOM_UTF8) :].decode("utf-8", "replace"), "utf-8"
    declared = [normalise_charset(header_charset)]
    match = _META_CHARSET.search(body[:8192])
    if match:
        meta = normalise_charset(match.group(1).decode("ascii", "ignore"))
        # A <meta> readable as ASCII cannot be in UTF-16/32: browsers read such a page as UTF-8 (WHATWG).
        declared.append("utf-8" if meta and meta.startswith(("utf-16", "utf-32")) else meta)
    for charset in declared:
        if charset:
            text = _decode(body, charset)
            if text is not None:
                return text, charset
    for charset in ("utf-8", "cp932", "euc_jp"):
        try:
            return body.decode(charset), charset
        except UnicodeDecodeError:
            continue
    return body.decode("utf-8", "replace"), "utf-8"


def content_encodings(values: Iterable[str]) -> list[str]:
    """The Content-Encoding header values as a list of codings, outermost last, without ``identity``."""
    codings = [part.strip().lower() for value in values for part in value.split(",")]
    return [coding for coding in codings if coding and coding != "identity"]


def _until_deadline(chunks: Iterable[bytes], deadline: float) -> Iterator[bytes]:
    for chunk in chunks:
        yield chunk
        if time.monotonic() > deadline:
            raise httpx.ReadTimeout("the fetch's total time is used up")


class _BoundedInflater:
    """Inflates one layer of gzip or deflate, never producing more than ``limit`` + 1 bytes in all.

    ``zlib.decompressobj(...).decompress(data, max_length)`` keeps the input it did not inflate; once the output
    passes the limit the rest is never inflated, so a bomb costs the limit in memory, not its decoded size.
    """

    def __init__(self, url: str, encoding: str, limit: int) -> None:
        self.url = url
        self.encoding = encoding
        self.limit = limit
        # gzip, or zlib-wrapped deflate (the header tells which); raw deflate is tried when that fails.
        self._inflater = zlib.decompressobj(zlib.MAX_WBITS | 32)
        self._started = False

    def _feed(self, data: bytes, room: int) -> bytes:
        try:
            return self._inflater.decompress(data, room)
        except zlib.error:
            if self._started or self.encoding != "deflate":
                raise
            self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)  # "deflate" sent without its zlib wrapper
            return self._inflater.decompress(data, room)

    def inflate(self, raw: Iterable[bytes]) -> Iterator[bytes]:
        produced = 0
        try:
            for data in raw:
                if self._inflater.eof:
                    break  # trailing bytes after the compressed stream are ignored
                out = self._feed(data, self.limit + 1 - produced)
                self._started = self._started or bool(out) or len(data) >= 2
                produced += len(out)
                yield out
                if produced > self.limit:
                    return
            yield self._inflater.flush(max(self.limit + 1 - produced, 1))
        except zlib.error as exc:
            raise UnsupportedContentError(self.url, f"the {self.encoding} body cannot be decoded: {exc}") from None


class GuardedFetcher:
    """Fetches one linked page at a time within the guard; see the module docstring."""

    def __init__(
        self,
        allowed_networks: Sequence[IPNetwork] = (),
        *,
        timeout_s: float = 10.0,
        max_bytes: int = 5 * 1024 * 1024,
        max_redirects: int = MAX_REDIRECTS,
        resolver: Resolver = system_resolver,
    ) -> None:
        self.policy = AddressPolicy(allowed_networks, resolver)
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
        encodings = content_encodings(response.headers.get_list("content-encoding"))
        if len(encodings) > 1 or (encodings and encodings[0] not in _INFLATED_ENCODINGS):
            raise UnsupportedContentError(url, f"Content-Encoding {', '.join(encodings)!r} is not accepted")
        # The raw bytes (httpx would inflate every encoding in full, before any limit is checked).
        raw = _until_deadline(response.iter_raw(_CHUNK), deadline)
        chunks = _BoundedInflater(url, encodings[0], self.max_bytes).inflate(raw) if encodings else raw
        body = bytearray()
        truncated = False
        for chunk in chunks:
            body += chunk
            if len(body) > self.max_bytes:
                del body[self.max_bytes :]
                truncated = True
                break
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
