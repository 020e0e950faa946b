"""Talking to the providers: the request for a metric, and one fetch with its policy.

The policy, in one place (:func:`fetch_payload`):

* network errors and 5xx answers are retried with jittered backoff, bounded in attempts
  and time (stamina), then become a :class:`FetchError`;
* ``429`` (and ``403`` with ``X-RateLimit-Remaining: 0``) honours the provider's word:
  ``Retry-After`` in seconds (``0`` included) or as an HTTP date, else
  ``X-RateLimit-Reset``. A short wait is waited here; a long one becomes
  :class:`RetryLaterError` so the metric is re-polled at that time instead of holding a
  worker;
* GitHub's ``202 Accepted`` ("statistics are being computed") is :class:`RetryLaterError`
  after a configured delay;
* the body is read as a stream and refused past a size cap, before it is all in memory;
* a request never leaves its scope: the provider's base URL (the Nango proxy's, for a
  Nango connection). A redirect or a ``link`` next page that points elsewhere is refused,
  not followed, so the credentials on the request (and the answer it would bring back
  into a sample, a transformer's input or a chart) stay with the provider; a parameter
  that is a dot segment (``.``, ``..``), which URL normalisation would walk up the path
  with, is refused before any request, and so is a value its template's pattern refuses
  (:meth:`schema.models.MetricTemplate.param_refusals`);
* no request goes to a private, loopback, link-local or otherwise non-public address
  unless it is the scope's own (:func:`refuse_private`), checked before every request,
  redirects and next pages included;
* a redirect's or a next page's request carries the original request's headers, never
  anything a response says (:func:`_onward`).

Credentials are added here and only here; errors name the method and URL without query.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Protocol
from urllib.parse import quote

import httpx
import orjson
import stamina
from pydantic import SecretStr

from providers import ProviderError, base_url, get_provider, load_providers
from schema.exceptions import MetricloomError
from schema.models import (
    BearerAuth,
    Connection,
    Endpoint,
    HeaderAuth,
    MetricTemplate,
    Pagination,
    Provider,
    QueryAuth,
    RateLimitHeaders,
)
from streams.settings import FetchSettings, Settings


class FetchError(MetricloomError):
    """The provider did not give a usable answer for one metric. ``status`` is the HTTP
    status it answered, or what went wrong before one (``network``, ``body``, ``request``),
    for the fetch-error metrics."""

    def __init__(self, message: str, status: str = "request") -> None:
        super().__init__(message)
        self.status = status


def unsafe_params(params: dict[str, str]) -> list[str]:
    """Why each unusable parameter value is unusable. Values are quoted into the path
    (``/`` and ``?`` stay inside their segment), but a whole segment of ``.`` or ``..`` is
    a dot segment that URL normalisation resolves, walking the request up the provider's
    path with the organisation's credentials; control characters belong in no id."""
    problems = []
    for name, value in sorted(params.items()):
        if value in {".", ".."}:
            problems.append(f"parameter {name} may not be {value!r} (a dot segment)")
        elif any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
            problems.append(f"parameter {name} may not hold control characters")
    return problems


Address = ipaddress.IPv4Address | ipaddress.IPv6Address

NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
LOCAL_NAME_SUFFIXES = (".localhost", ".local", ".internal", ".home.arpa")
"""Special-use names (RFC 6761, RFC 6762, RFC 8375, ICANN's ``.internal``) that no public
DNS answers for: like a name without a dot (a compose service, ``localhost``), they are
the operator's own network's, and may resolve to a private address."""


def non_public(address: Address) -> bool:
    """Whether an address is one a provider request must not reach: private, loopback,
    link-local, multicast, reserved, unspecified, or otherwise not globally routable
    (shared address space ``100.64/10``, benchmarking ``198.18/15``, …). An IPv6 address
    embedding an IPv4 one (IPv4-mapped ``::ffff:a.b.c.d``, 6to4 ``2002::/16``, NAT64
    ``64:ff9b::/96``) is judged by the IPv4 address it reaches."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return non_public(embedded)
    return (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or not address.is_global
    )


def _plain(address: Address) -> Address:
    """An IPv4-mapped IPv6 address as the IPv4 address it is, for comparing."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


async def _resolve(host: str, port: int | None) -> frozenset[Address]:
    """Every address ``host`` resolves to (an IP literal is its own), as httpx would
    connect: through the system's resolver (``getaddrinfo``)."""
    try:
        return frozenset({_plain(ipaddress.ip_address(host))})
    except ValueError:
        pass
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return frozenset(_plain(ipaddress.ip_address(str(info[4][0]).split("%")[0])) for info in infos)


async def own_addresses(scope: httpx.URL) -> frozenset[Address]:
    """The addresses a scope's requests may reach even though they are not public: its
    host's own, when the operator's base URL names a private address on purpose — an IP
    literal (the tests' demo API at ``127.0.0.1``), a name without a dot (``demo-api``, a
    compose service; ``localhost``) or a special-use name (:data:`LOCAL_NAME_SUFFIXES`).
    A public-looking DNS name (``api.github.com``) gets none: what it resolves to is not
    the operator's to vouch for, so an answer naming a private address is refused, not
    trusted."""
    host = scope.host.rstrip(".").lower()
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if "." in host and not host.endswith(LOCAL_NAME_SUFFIXES):
            return frozenset()
    return await _resolve(host, scope.port)


async def refuse_private(url: httpx.URL, allowed: frozenset[Address], where: str) -> None:
    """Raise FetchError (``request``) if ``url``'s host resolves to any non-public address
    (:func:`non_public`) outside ``allowed`` (the scope's own, :func:`own_addresses`).

    Honest about its limit: the host is resolved here, then httpx resolves it again when
    it connects. A name whose answers change between the two (a DNS-rebinding server with
    a zero TTL) can still reach a private address in that window; closing it would mean
    connecting to the address checked here (a transport that dials it with the name kept
    for TLS and ``Host``), which is not done. Resolution errors propagate (``OSError``)."""
    for address in sorted(await _resolve(url.host, url.port), key=str):
        if non_public(address) and address not in allowed:
            raise FetchError(
                f"{where}: host {url.host} resolves to {address}, a non-public address"
                " outside the scope's own; not requested",
                "request",
            )


def within(url: httpx.URL, scope: httpx.URL) -> bool:
    """Whether ``url`` is inside ``scope``: same scheme, host and port, and a path under
    the scope's path (a path that is just the scope's, or continues after a ``/``)."""
    if (url.scheme, url.host, url.port) != (scope.scheme, scope.host, scope.port):
        return False
    base = scope.path.rstrip("/")
    return url.path == base or url.path.startswith(base + "/")


def provider_of(settings: Settings, template: MetricTemplate) -> Provider:
    """The template's provider, as declared (FetchError if no file declares it any more)."""
    try:
        return get_provider(template.provider, load_providers(settings.providers_dir))
    except ProviderError as exc:
        raise FetchError(f"{template.id}: {exc}") from exc


def scope_of(settings: Settings, template: MetricTemplate, connection: Connection | None) -> str:
    """Where a metric's requests may go: the provider's base URL (its file's, or the
    ``METRICLOOM_PROVIDER_URLS__<NAME>`` override), or the Nango proxy's."""
    if connection is not None and connection.auth == "nango":
        return settings.nango.base_url.rstrip("/") + "/proxy"
    return base_url(settings, provider_of(settings, template))


class RetryLaterError(MetricloomError):
    """The provider asked to come back later (rate limit, statistics being computed)."""

    def __init__(self, message: str, retry_at: datetime) -> None:
        super().__init__(message)
        self.retry_at = retry_at


class _TransientError(Exception):
    """A failure worth retrying at once (network error, 5xx)."""

    def __init__(self, message: str, status: str = "network") -> None:
        super().__init__(message)
        self.status = status


class Budget(Protocol):
    """A provider rate budget shared across workers (see agents/fetching.py)."""

    async def take(self) -> datetime | None:
        """Reserve one request; None if allowed, else when the budget resets."""

    async def record(self, headers: httpx.Headers) -> None:
        """Update the budget from a response's rate-limit headers."""


def request_for(
    settings: Settings,
    template: MetricTemplate,
    endpoint: Endpoint,
    params: dict[str, str],
    connection: Connection | None = None,
    organization_id: str | None = None,
) -> httpx.Request:
    """The HTTP request for one metric's endpoint, credentials included.

    The provider's file says which headers every request carries and how a token is sent
    (:func:`_with_credentials`). Credentials come from the metric's connection: a direct
    token, or the Nango proxy (the request goes to ``{nango}/proxy/{path}`` with the
    connection id and provider config key, and Nango adds the provider's credentials).
    Without a connection, the deployment's default token for the provider — but only for
    the organisations ``METRICLOOM_DEFAULT_TOKEN_ORGANIZATIONS`` names (whatever that
    token can read, any other organisation could otherwise read too); any other
    organisation's metric is refused with "needs a connection". With no default token,
    requests without a connection go unauthenticated (public data, the demo API)."""
    problems = unsafe_params(params) or template.param_refusals(params)
    if problems:
        raise FetchError(f"{template.id}: {'; '.join(problems)}")
    base = scope_of(settings, template, None)
    try:
        path = endpoint.path.format(**{k: quote(v, safe="") for k, v in params.items()})
        query = {k: v.format(**params) for k, v in endpoint.query.items()}
        body = _fill(endpoint.body, params) if endpoint.body is not None else None
    except KeyError as exc:
        raise FetchError(f"{template.id}: the endpoint needs parameter {exc.args[0]}") from exc
    provider = provider_of(settings, template)
    headers = {"Accept": "application/json"} | provider.headers
    token = settings.provider_tokens.get(template.provider)
    allowed = organization_id in settings.default_token_organizations
    if connection is None and token is not None and not allowed:
        raise FetchError(
            f"{template.id}: organisation {organization_id!r} needs a connection for"
            f" {template.provider} (the deployment's token is only for the organisations"
            " METRICLOOM_DEFAULT_TOKEN_ORGANIZATIONS names)"
        )
    if connection is not None and connection.provider != template.provider:
        raise FetchError(
            f"connection {connection.id} is for {connection.provider}, not {template.provider}"
        )
    if connection is not None and connection.auth == "token":
        token = connection.token
    if connection is not None and connection.auth == "nango":
        if settings.nango.secret_key is None:
            raise FetchError("a Nango connection needs METRICLOOM_NANGO__SECRET_KEY")
        base = scope_of(settings, template, connection)
        headers["Connection-Id"] = connection.nango_connection_id or ""
        headers["Provider-Config-Key"] = connection.nango_provider_config_key or ""
        headers["Authorization"] = f"Bearer {settings.nango.secret_key.get_secret_value()}"
    elif token is not None:
        _with_credentials(provider, token, headers, query)
    if body is not None:
        headers["Content-Type"] = "application/json"
    return httpx.Request(
        endpoint.method,
        base + path,
        params=query,
        headers=headers,
        content=json.dumps(body).encode() if body is not None else None,
    )


def _with_credentials(
    provider: Provider, token: SecretStr, headers: dict[str, str], query: dict[str, str]
) -> None:
    """Put ``token`` where the provider's ``auth`` says: ``Authorization: Bearer``, a named
    header, or a named query parameter (which error messages never show: they name a
    request without its query). A provider that takes none refuses a token rather than
    dropping it, so a connection made for it by mistake is an error, not a silent
    unauthenticated fetch."""
    secret = token.get_secret_value()
    auth = provider.auth
    if isinstance(auth, BearerAuth):
        headers["Authorization"] = f"Bearer {secret}"
    elif isinstance(auth, HeaderAuth):
        headers[auth.name] = secret
    elif isinstance(auth, QueryAuth):
        query[auth.name] = secret
    else:
        raise FetchError(f"provider {provider.name!r} takes no credentials, and a token was given")


def _fill(value: Any, params: dict[str, str]) -> Any:
    """Substitute ``{PARAM}`` placeholders in every string of a JSON body."""
    if isinstance(value, str):
        return value.format(**params)
    if isinstance(value, list):
        return [_fill(item, params) for item in value]
    if isinstance(value, dict):
        return {key: _fill(item, params) for key, item in value.items()}
    return value


def reset_at_from(
    headers: httpx.Headers, rate_limit: RateLimitHeaders, now: datetime
) -> datetime | None:
    """When the provider's rate limit resets, from its reset header (epoch seconds or
    seconds from now, as its file says); None without a usable one."""
    reset = headers.get(rate_limit.reset)
    if reset is None or not reset.strip().isdigit():
        return None
    if rate_limit.reset_format == "seconds":
        return now + timedelta(seconds=int(reset))
    return max(now, datetime.fromtimestamp(int(reset), tz=UTC))


def remaining_from(headers: httpx.Headers, rate_limit: RateLimitHeaders) -> int | None:
    """How many requests the provider says are left; None without a usable header."""
    remaining = headers.get(rate_limit.remaining)
    return int(remaining) if remaining is not None and remaining.strip().isdigit() else None


def retry_at_from(
    headers: httpx.Headers, now: datetime, rate_limit: RateLimitHeaders | None = None
) -> datetime | None:
    """When the provider says to come back, from Retry-After or its rate-limit reset
    header (``X-RateLimit-Reset`` unless its file names another)."""
    value = headers.get("retry-after")
    if value is not None:
        value = value.strip()
        if value.isdigit():
            return now + timedelta(seconds=int(value))
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            when = None
        if when is not None:
            return max(now, when if when.tzinfo else when.replace(tzinfo=UTC))
    return reset_at_from(headers, rate_limit or RateLimitHeaders(), now)


async def fetch_payload(
    http: httpx.AsyncClient,
    request: httpx.Request,
    policy: FetchSettings | None = None,
    budget: Budget | None = None,
    pagination: Pagination | None = None,
    scope: str | None = None,
    rate_limit: RateLimitHeaders | None = None,
) -> Any:
    """Send the request under the fetch policy and return the JSON body; with
    ``pagination``, read every page and return one body holding all the items. Redirects
    and next pages are followed only inside ``scope`` (:func:`scope_of`; by default the
    request's own origin). ``rate_limit`` names the provider's rate-limit headers (its
    file's; GitHub's ``X-RateLimit-*`` by default).

    Raises FetchError (give up for this poll) or RetryLaterError (come back at a time)."""
    bounds = httpx.URL(scope) if scope is not None else request.url.copy_with(path="/", query=None)
    try:
        allowed = await own_addresses(bounds)
    except OSError as exc:
        raise FetchError(f"{bounds}: cannot resolve {bounds.host} ({exc})", "network") from exc
    limits = rate_limit or RateLimitHeaders()
    body, headers = await _fetch_one(http, request, policy, budget, bounds, allowed, limits)
    if pagination is None:
        return body
    where = f"{request.method} {request.url.copy_with(query=None)}"
    items = list(_items(body, pagination, where))
    page = body
    for _ in range(pagination.max_pages - 1):
        following = _next_request(request, page, headers, pagination, len(items))
        if following is None:
            return _with_items(body, pagination, items)
        if not within(following.url, bounds):
            raise FetchError(
                f"{where}: the next page is at {_origin(following.url)}, outside {bounds};"
                " not followed",
                "request",
            )
        page, headers = await _fetch_one(http, following, policy, budget, bounds, allowed, limits)
        more = _items(page, pagination, where)
        if not more:
            return _with_items(body, pagination, items)
        items.extend(more)
    if _next_request(request, page, headers, pagination, len(items)) is None:
        return _with_items(body, pagination, items)
    raise FetchError(f"{where}: more than {pagination.max_pages} pages")


def _items(body: Any, pagination: Pagination, where: str) -> list[Any]:
    found = body if pagination.items_path == "" else _at(body, pagination.items_path)
    if not isinstance(found, list):
        raise FetchError(f"{where}: no list at {pagination.items_path or 'the top'} of a page")
    return found


def _at(body: Any, path: str) -> Any:
    for part in path.split("."):
        body = body.get(part) if isinstance(body, dict) else None
    return body


def _with_items(body: Any, pagination: Pagination, items: list[Any]) -> Any:
    if pagination.items_path == "":
        return items
    merged = dict(body)
    parts = pagination.items_path.split(".")
    target = merged
    for part in parts[:-1]:
        target[part] = dict(target[part])
        target = target[part]
    target[parts[-1]] = items
    return merged


def _next_request(
    request: httpx.Request, page: Any, headers: httpx.Headers, pagination: Pagination, read: int
) -> httpx.Request | None:
    """The request for the page after ``page``, or None when there is none."""
    if pagination.kind == "link":
        link = httpx.Response(200, headers=headers).links.get("next", {}).get("url")
        if not link:
            return None
        return _onward(request, request.url.join(link), "GET")
    url: httpx.URL
    if pagination.kind == "page_token":
        token = _at(page, pagination.token_path)
        if not token:
            return None
        url = request.url.copy_merge_params({pagination.token_param: str(token)})
    else:
        if _at(page, pagination.has_more_path) is not True:
            return None
        url = request.url.copy_merge_params({pagination.offset_param: str(read)})
    return _onward(request, url, request.method)


def _onward(request: httpx.Request, url: httpx.URL, method: str) -> httpx.Request:
    """The request for a redirect or a next page, built from ``request``'s own headers.

    Those headers are exactly what :func:`request_for` put there (``Accept``, the provider's
    version header, the credentials, ``Content-Type``) plus the ``Host`` and
    ``Content-Length`` httpx derives, so copying them is the same as rebuilding the
    credential headers; this one function makes that the only way an onward request is
    made. Nothing of a response becomes a header: only its URL is used (already checked
    ``within`` the scope), and that URL's user-info is dropped, since httpx would turn
    ``user:pass@`` into an ``Authorization`` header in place of the connection's. ``Host``
    and ``Content-Length`` are derived again; a GET carries no body and no
    ``Content-Type``."""
    keep_body = method == request.method and method != "GET"
    dropped = {"host", "content-length"} | (set() if keep_body else {"content-type"})
    headers = [(k, v) for k, v in request.headers.multi_items() if k.lower() not in dropped]
    return httpx.Request(
        method,
        url.copy_with(userinfo=b""),
        headers=headers,
        content=request.content if keep_body else None,
    )


async def _fetch_one(
    http: httpx.AsyncClient,
    request: httpx.Request,
    policy: FetchSettings | None,
    budget: Budget | None,
    bounds: httpx.URL,
    allowed: frozenset[Address],
    rate_limit: RateLimitHeaders,
) -> tuple[Any, httpx.Headers]:
    """One request under the policy: the JSON body and the headers. Redirects inside
    ``bounds`` are followed (at most ``MAX_REDIRECTS``); any other is an error. Each
    request, first or redirected, is checked by :func:`refuse_private` before it is sent."""
    policy = policy or FetchSettings()
    waited = 0.0
    redirects = 0
    while True:
        where = f"{request.method} {request.url.copy_with(query=None)}"
        try:
            async for attempt in stamina.retry_context(
                on=_TransientError,
                attempts=policy.attempts,
                timeout=policy.retry_timeout_s,
                wait_initial=policy.backoff_initial_s,
                wait_max=policy.backoff_max_s,
            ):
                with attempt:
                    status, headers, body = await _send(
                        http, request, where, policy, budget, allowed
                    )
        except _TransientError as exc:
            raise FetchError(
                f"{where}: {exc} (after {policy.attempts} attempts)", exc.status
            ) from exc
        if status in REDIRECTS:
            request = _redirected(request, status, headers, bounds, where, redirects)
            redirects += 1
            continue
        now = datetime.now(UTC)
        limited = status == 429 or (status == 403 and remaining_from(headers, rate_limit) == 0)
        if limited:
            retry_at = retry_at_from(headers, now, rate_limit) or now + timedelta(seconds=60)
            wait = (retry_at - now).total_seconds()
            if waited + wait <= policy.max_inline_wait_s:
                waited += wait
                await asyncio.sleep(wait)
                continue
            raise RetryLaterError(f"{where}: rate limited until {retry_at.isoformat()}", retry_at)
        if status == 202:
            retry_at = now + timedelta(seconds=policy.accepted_retry_s)
            raise RetryLaterError(
                f"{where}: 202 Accepted, the provider is still computing", retry_at
            )
        if status >= 400:
            raise FetchError(f"{where}: HTTP {status}", str(status))
        try:  # strict JSON: no NaN or infinity, no lone surrogates (they cannot be stored)
            return orjson.loads(body), headers
        except orjson.JSONDecodeError as exc:
            raise FetchError(f"{where}: body is not JSON ({exc})", "body") from exc


REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5


def _origin(url: httpx.URL) -> str:
    return f"{url.scheme}://{url.netloc.decode('ascii', 'replace')}"


def _redirected(
    request: httpx.Request,
    status: int,
    headers: httpx.Headers,
    bounds: httpx.URL,
    where: str,
    redirects: int,
) -> httpx.Request:
    """The request a redirect asks for, if it stays inside ``bounds``. 301/302/303 become
    a GET without a body (as browsers and httpx do); 307/308 keep method and body."""
    location = headers.get("location")
    if not location:
        raise FetchError(f"{where}: HTTP {status} without a Location", str(status))
    if redirects >= MAX_REDIRECTS:
        raise FetchError(f"{where}: more than {MAX_REDIRECTS} redirects", str(status))
    target = request.url.join(location)
    if not within(target, bounds):
        raise FetchError(
            f"{where}: HTTP {status} to {_origin(target)}, outside {bounds}; not followed",
            str(status),
        )
    return _onward(request, target, request.method if status in {307, 308} else "GET")


async def _send(
    http: httpx.AsyncClient,
    request: httpx.Request,
    where: str,
    policy: FetchSettings,
    budget: Budget | None,
    allowed: frozenset[Address],
) -> tuple[int, httpx.Headers, bytes]:
    """One request: the status, the headers and the body read up to the cap; refused
    before it is sent (nor taken from the budget) if its host resolves to a non-public
    address outside ``allowed``."""
    try:
        await refuse_private(request.url, allowed, where)
    except OSError as exc:  # resolving failed: as a connection failure would
        raise _TransientError(f"cannot resolve {request.url.host}: {exc}") from exc
    if budget is not None:
        reset_at = await budget.take()
        if reset_at is not None:
            raise RetryLaterError(
                f"{where}: rate budget spent until {reset_at.isoformat()}", reset_at
            )
    try:
        response = await http.send(request, stream=True)
    except httpx.TimeoutException as exc:
        raise _TransientError("timed out") from exc
    except httpx.TransportError as exc:
        raise _TransientError(f"{type(exc).__name__}: {exc}") from exc
    try:
        if budget is not None:
            await budget.record(response.headers)
        if response.status_code >= 500:
            raise _TransientError(f"HTTP {response.status_code}", str(response.status_code))
        body = bytearray()
        try:
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > policy.max_body_bytes:
                    raise FetchError(
                        f"{where}: body over the {policy.max_body_bytes}-byte cap", "body"
                    )
        except httpx.TransportError as exc:
            raise _TransientError(f"body cut short: {exc}") from exc
        return response.status_code, response.headers, bytes(body)
    finally:
        await response.aclose()
