"""Prometheus metrics on the admin listener: counted
from real requests through the gate, scraped over HTTP, parsed with
prometheus-client's own parser."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from consentgate.config.loading import ConfigError, config_from_mapping
from tests.conftest import StartStack, admin_section
from tests.support.browsersim import Browser
from tests.support.gateproc import free_port
from tests.web.consent_flow.test_authorize import approve_new, auth_params, register


async def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with aiohttp.ClientSession() as session, session.get(f"{url}/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=")
        text = await response.text()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_decisions_refusals_and_relays_are_counted_and_scraped_on_the_admin_port(
    start_stack: StartStack, tmp_path: Path
) -> None:
    admin = f"127.0.0.1:{free_port()}"
    stack = await start_stack(admin=admin_section(tmp_path, admin))
    client_id = await register(stack)
    async with Browser(stack.url) as alice, Browser(stack.url) as mallory:
        assert (await approve_new(alice, auth_params(client_id))).status == 303
        again = await alice.authorize({**auth_params(client_id), "state": "2"})
        assert again.status == 302  # remembered
        page = await mallory.authorize(auth_params(client_id))
        forged = await mallory.answer(page, "approve", override={"csrf": "forged"})
        assert forged.status == 403
        await mallory.get("/mcp/tools")  # relayed: the fake proxy answers 200

    metrics = await scrape(f"http://{admin}")

    def value(name: str, **labels: str) -> float:
        return metrics.get((name, tuple(sorted(labels.items()))), 0.0)

    assert (
        value("consentgate_consent_decisions_total", outcome="asked", client_kind="registered") == 2
    )
    assert (
        value("consentgate_consent_decisions_total", outcome="approved", client_kind="registered")
        == 1
    )
    assert (
        value("consentgate_consent_decisions_total", outcome="remembered", client_kind="registered")
        == 1
    )
    assert value("consentgate_refusals_total", reason="csrf") == 1
    assert value("consentgate_registrations_total") == 1
    assert value("consentgate_relayed_responses_total", status_class="2xx") >= 2  # +register
    # The two authorizations relayed (approved, remembered): the upstream's 302s.
    assert value("consentgate_relayed_responses_total", status_class="3xx") == 2
    assert value("consentgate_upstream_response_seconds_count") >= 2
    assert value("consentgate_tamper_events") == 0
    assert value("consentgate_authorize_decision_seconds_count") == 3  # alice x2, mallory
    assert value("consentgate_pending_pages") == 0  # mallory's open page is sealed in it
    assert value("consentgate_requests_in_flight") == 0  # the scrape is not a gate request
    assert value("consentgate_streams_open") == 0
    # Store round trips, by operation: the approval's durable transaction, the pages.
    assert value("consentgate_store_operation_seconds_count", operation="transaction") >= 1
    assert value("consentgate_store_operation_seconds_count", operation="count_pending") >= 1
    assert any(name == "consentgate_build_info" for name, _ in metrics)
    # No client_id, URI or path in any label: bounded label sets only.
    assert not [key for key in metrics if client_id in str(key) or "/mcp" in str(key)]

    # The public port has no metrics: /metrics there is the upstream's path.
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{stack.url}/metrics") as public,
    ):
        assert "consentgate_" not in await public.text()


async def test_upstream_failures_are_counted_by_kind(
    start_stack: StartStack, tmp_path: Path
) -> None:
    admin = f"127.0.0.1:{free_port()}"
    dead = f"http://127.0.0.1:{free_port()}"
    stack = await start_stack(admin=admin_section(tmp_path, admin), upstream={"url": dead})
    async with aiohttp.ClientSession() as session:
        for _ in range(2):
            async with session.get(f"{stack.url}/x") as response:
                assert response.status == 502
    metrics = await scrape(f"http://{admin}")
    assert metrics[("consentgate_upstream_errors_total", (("kind", "unreachable"),))] == 2


@pytest.mark.parametrize(
    ("server", "admin", "problem"),
    [
        ({"listen": "127.0.0.1:8080"}, "127.0.0.1:8080", "is the public listener"),
        (
            {"listen": "127.0.0.1:8081", "workers": 2},
            "127.0.0.1:0",
            "2 workers share one fixed admin port",
        ),
    ],
)
def test_the_admin_listener_is_never_the_public_one_nor_a_random_port_of_each_worker(
    server: dict[str, object], admin: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_mapping(
            {
                "server": {"public_url": "http://127.0.0.1:8080", **server},
                "upstream": {"url": "http://127.0.0.1:9"},
                "admin": {"listen": admin, "token_file": "admin.token"},
            },
            environ={},
        )
    assert any(problem in text for text in caught.value.problems), caught.value.problems
