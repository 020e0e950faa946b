"""Where the fetcher may go: template parameter patterns, and non-public addresses."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from agents.fetch_client import (
    FetchError,
    fetch_payload,
    non_public,
    own_addresses,
    refuse_private,
)
from metricloom.cli import DEMO
from schema.models import DEFAULT_PARAM_PATTERN, MetricTemplate
from templates import get_template, load_templates
from tests.conftest import DEMO_PARAMS


def _template(**changes: Any) -> MetricTemplate:
    doc = get_template("github-repo-stars").model_dump() | changes
    return MetricTemplate.model_validate(doc)


def test_every_shipped_parameter_has_its_own_pattern_and_the_demo_values_match() -> None:
    """No shipped template falls back to the default pattern; the values the tests and
    `make up`'s demo seed use pass, and a slash or a query does not."""
    for template in load_templates().values():
        for param in template.params:
            assert param.pattern != DEFAULT_PARAM_PATTERN, (template.id, param.name)
        assert template.param_refusals({p: DEMO_PARAMS[p] for p in template.param_names}) == []
        if template.params:  # a template with no parameter has nothing to refuse
            assert template.param_refusals({p: "a/b?c" for p in template.param_names})
    for template_id, params, *_ in DEMO:
        assert get_template(template_id).param_refusals(params) == []


def test_a_bare_name_gets_the_default_pattern_and_a_bad_pattern_stops_the_load() -> None:
    template = _template(params=["OWNER", "REPO"])
    assert [p.pattern for p in template.params] == [DEFAULT_PARAM_PATTERN] * 2
    assert template.param_refusals({"OWNER": "a b", "REPO": "ok"}) == [
        f"parameter OWNER='a b' does not match {DEFAULT_PARAM_PATTERN}"
    ]
    with pytest.raises(ValidationError, match="is not a regular expression"):
        _template(params=[{"name": "OWNER", "pattern": "(["}, "REPO"])
    with pytest.raises(ValidationError, match=r"uses undeclared parameter\(s\) \['REPO'\]"):
        _template(params=["OWNER"])
    with pytest.raises(ValidationError, match="backfill window"):
        _template(params=["OWNER", "REPO", "FROM"])


def test_patterns_match_in_full() -> None:
    """``re.fullmatch``: a trailing newline is not let through by ``$``."""
    template = get_template("github-repo-stars")
    assert template.param_refusals({"OWNER": "octocat\n", "REPO": "x"})
    assert template.param_refusals({"OWNER": "octocat", "REPO": "x"}) == []


@pytest.mark.parametrize(
    ("address", "refused"),
    [
        ("10.1.2.3", True),
        ("172.16.0.1", True),
        ("192.168.1.1", True),
        ("127.0.0.2", True),
        ("169.254.169.254", True),
        ("100.64.0.1", True),
        ("224.0.0.1", True),
        ("240.0.0.1", True),
        ("0.0.0.0", True),
        ("::", True),
        ("::1", True),
        ("fe80::1", True),
        ("fc00::1", True),
        ("ff02::1", True),
        ("::ffff:127.0.0.1", True),
        ("::ffff:169.254.169.254", True),
        ("2002:7f00:1::", True),  # 6to4 of 127.0.0.1
        ("64:ff9b::a00:1", True),  # NAT64 of 10.0.0.1
        ("8.8.8.8", False),
        ("140.82.112.3", False),
        ("2606:4700::1111", False),
        ("::ffff:8.8.8.8", False),
        ("64:ff9b::808:808", False),
    ],
)
def test_non_public_addresses(address: str, refused: bool) -> None:
    assert non_public(ipaddress.ip_address(address)) is refused


async def test_only_a_scope_the_operator_names_locally_may_use_private_addresses() -> None:
    """An IP literal and a name without a dot (``localhost``; a compose service) keep
    their own addresses; a public-looking name gets none, whatever it resolves to."""
    loopback = ipaddress.ip_address("127.0.0.1")
    assert await own_addresses(httpx.URL("http://127.0.0.1:8080/github")) == {loopback}
    assert loopback in await own_addresses(httpx.URL("http://localhost:8080/github"))
    assert await own_addresses(httpx.URL("https://api.github.com")) == frozenset()


async def test_a_name_resolving_to_loopback_is_refused_without_the_exemption() -> None:
    """Real resolution: ``localhost`` is 127.0.0.1 on any machine; outside a scope that
    owns it, it is refused, naming the host and the address."""
    with pytest.raises(FetchError, match=r"host localhost resolves to 127\.0\.0\.1") as info:
        await refuse_private(httpx.URL("http://localhost:9/x"), frozenset(), "GET x")
    assert info.value.status == "request"
    await refuse_private(
        httpx.URL("http://localhost:9/x"), frozenset({ipaddress.ip_address("127.0.0.1")}), "x"
    )


async def test_a_public_looking_provider_resolving_to_loopback_is_not_requested(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A provider base URL with a DNS name whose answer is a loopback address (a
    poisoned or rebinding resolver; faked here, since this machine has no such name):
    refused before any request, so the credentials go nowhere."""
    loop = asyncio.get_running_loop()

    async def resolver(host: str, port: Any, **_: Any) -> list[Any]:
        assert host == "api.provider.example"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port or 80))]

    monkeypatch.setattr(loop, "getaddrinfo", resolver)
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={})

    transport = httpx.MockTransport(answer)
    request = httpx.Request(
        "GET", "https://api.provider.example/repos/a/b", headers={"Authorization": "Bearer t"}
    )
    async with httpx.AsyncClient(transport=transport) as http:
        with pytest.raises(
            FetchError, match=r"host api\.provider\.example resolves to 127\.0\.0\.1"
        ):
            await fetch_payload(http, request, scope="https://api.provider.example")
    assert sent == []
