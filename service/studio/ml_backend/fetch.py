"""Fetching the images of tasks made inside Label Studio, from allowed hosts only.

A URL is fetched only when its host is allowed (`ml_backend.allowed_hosts`; by default the
Label Studio URL's and the service's public URL's `host:port`). Relative URLs such as
`/data/upload/...` resolve against Label Studio and carry its token, which is sent to Label
Studio's origin and nowhere else. Redirects are followed by hand, only to allowed hosts; a
body is refused as soon as it passes the size limit. Every failure is a `FetchFailure` with a
stable code, never an exception, so one bad task cannot sink a batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpx

from service.core.settings import Settings

DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class FetchFailure:
    code: str  # host_not_allowed, unsupported_url, fetch_failed, fetch_http_error, image_too_large
    reason: str


@dataclass(frozen=True)
class HostRule:
    host: str
    port: int | None  # None: any port

    def allows(self, host: str, port: int) -> bool:
        return host == self.host and (self.port is None or self.port == port)


def host_rules(settings: Settings) -> list[HostRule]:
    """The configured hosts, else the `host:port` of Label Studio and of the public URL."""
    entries = settings.ml_backend.allowed_hosts
    if entries is None:
        return [_origin_rule(settings.label_studio.url), _origin_rule(settings.public_url)]
    rules = []
    for entry in entries:
        parts = urlsplit(f"//{entry.strip()}")
        if parts.hostname:
            rules.append(HostRule(parts.hostname.lower(), parts.port))
    return rules


def _origin_rule(url: str) -> HostRule:
    host, port = _host_port(url)
    return HostRule(host, port)


def _host_port(url: str) -> tuple[str, int]:
    """(host, port) of an http(s) URL; ValueError for anything else."""
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"expected an http(s) URL with a host, got {url[:80]!r}")
    return parts.hostname.lower(), parts.port or DEFAULT_PORTS[parts.scheme]


class ImageFetcher:
    """Fetches image bytes for many URLs at once, on a few threads."""

    def __init__(self, settings: Settings, *, transport: httpx.BaseTransport | None = None):
        config = settings.ml_backend
        self.rules = host_rules(settings)
        self.studio_url = settings.label_studio.url.rstrip("/") + "/"
        self.studio_origin = _host_port(self.studio_url)
        self.token = settings.label_studio.api_key
        self.max_bytes = config.fetch_max_bytes
        self.max_redirects = config.max_redirects
        self.threads = config.fetch_threads
        self.client = httpx.Client(
            timeout=config.fetch_timeout_s,
            follow_redirects=False,
            transport=transport,
            limits=httpx.Limits(max_connections=config.fetch_threads),
        )

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> ImageFetcher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def resolve(self, url: str) -> str | FetchFailure:
        """The absolute URL to fetch (relative ones against Label Studio), if allowed."""
        text = url.strip()
        if not text or len(text) > 8192 or any(c in text for c in "\x00\r\n"):
            return FetchFailure("unsupported_url", "the image URL is empty, too long or malformed")
        absolute = urljoin(self.studio_url, text) if text.startswith("/") else text
        try:
            host, port = _host_port(absolute)
        except ValueError:
            scheme = urlsplit(absolute).scheme or "relative"
            return FetchFailure("unsupported_url", f"{scheme!r} image URLs are not fetched")
        if not any(rule.allows(host, port) for rule in self.rules):
            return FetchFailure(
                "host_not_allowed",
                f"{host}:{port} is not an allowed image host "
                "(see ACTIVELABEL_ML_BACKEND__ALLOWED_HOSTS)",
            )
        return absolute

    def fetch_all(self, urls: Sequence[str]) -> list[bytes | FetchFailure]:
        """The bytes of each URL (or why not), in order; fetched concurrently."""
        if not urls:
            return []
        with ThreadPoolExecutor(max_workers=min(self.threads, len(urls))) as pool:
            return list(pool.map(self.fetch, urls))

    def fetch(self, url: str) -> bytes | FetchFailure:
        """One image's bytes, following at most `max_redirects` redirects to allowed hosts."""
        current = self.resolve(url)
        for _ in range(self.max_redirects + 1):
            if isinstance(current, FetchFailure):
                return current
            try:
                outcome = self._get(current)
            except httpx.HTTPError as err:
                return FetchFailure("fetch_failed", f"{_where(current)}: {type(err).__name__}")
            if not isinstance(outcome, str):
                return outcome
            current = self.resolve(urljoin(current, outcome))
        return FetchFailure("fetch_failed", f"more than {self.max_redirects} redirects")

    def _get(self, url: str) -> bytes | FetchFailure | str:
        """The body, a failure, or the `Location` of a redirect (a str)."""
        # No `Accept: image/*`: Label Studio's upload route answers that with 406.
        headers: dict[str, str] = {}
        if _host_port(url) == self.studio_origin and self.token.get_secret_value():
            headers["Authorization"] = f"Token {self.token.get_secret_value()}"
        with self.client.stream("GET", url, headers=headers) as response:
            if response.is_redirect and "location" in response.headers:
                return response.headers["location"]
            if response.status_code != 200:
                return FetchFailure(
                    "fetch_http_error", f"{_where(url)} answered HTTP {response.status_code}"
                )
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > self.max_bytes:
                return self._too_large(url)
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > self.max_bytes:
                    return self._too_large(url)
                chunks.append(chunk)
            return b"".join(chunks)

    def _too_large(self, url: str) -> FetchFailure:
        return FetchFailure(
            "image_too_large", f"{_where(url)} is larger than the limit of {self.max_bytes} bytes"
        )


def _where(url: str) -> str:
    """The URL without its query (signatures and tokens stay out of messages and logs)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"[:200]
