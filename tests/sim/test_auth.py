"""The simulator checks the bearer token it was started with (ARM's 401 otherwise, on its own routes too), and
drplan's adapters send the token they were configured with, through the real SDK."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from drplan.asr import AsrClient, StaticTokenCredential
from drplan.errors import PermissionError_, VCenterPermissionError
from drplan.plan.loader import load_plan
from drplan.plan.schema import AzureTarget
from drplan.run.targets import open_targets
from drplan.settings import Settings
from drplan.sim import Estate, start_simulator
from drplan.sim.remote import RemoteSite

from .conftest import small_estate

TOKEN = "given-at-start-4f1c"


THREE_TIER = Path(__file__).resolve().parents[2] / "plans" / "three-tier.yaml"
PLAN = load_plan(THREE_TIER)
VM = "web-01"


@pytest.fixture(scope="module")
def sim():
    with start_simulator(Estate.from_plan(PLAN), speed=6000, token=TOKEN) as s:
        yield s


def _items_url(sim) -> str:
    return (
        f"{sim.endpoint}/subscriptions/{sim.subscription_id}/resourceGroups/{sim.resource_group}"
        f"/providers/Microsoft.RecoveryServices/vaults/{sim.vault}/replicationProtectedItems"
        "?api-version=2025-08-01"
    )


def _get(sim, url: str, token: str | None):
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    return requests.get(url, headers=headers, verify=sim.ca_file, timeout=10)


@pytest.mark.parametrize("route", ["arm", "clock"])
@pytest.mark.parametrize(
    ("token", "code"),
    [(None, "AuthenticationFailed"), ("", "AuthenticationFailed"), ("wrong", "InvalidAuthenticationToken")],
)
def test_a_wrong_or_missing_token_gets_arms_401(sim, route, token, code):
    url = _items_url(sim) if route == "arm" else f"{sim.endpoint}/drplan-sim/clock"
    r = _get(sim, url, token)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == code  # ARM's error envelope
    challenge = r.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer authorization_uri=") and 'error="invalid_token"' in challenge
    assert TOKEN not in r.text


def test_the_started_token_is_accepted_on_every_route(sim):
    assert _get(sim, _items_url(sim), TOKEN).status_code == 200
    assert _get(sim, f"{sim.endpoint}/drplan-sim/clock", TOKEN).status_code == 200
    state = requests.post(
        f"{sim.endpoint}/drplan-sim/onprem/read_state",
        json={"vms": []},
        headers={"Authorization": f"Bearer {TOKEN}"},
        verify=sim.ca_file,
        timeout=10,
    )
    assert state.status_code == 200
    refused = requests.post(
        f"{sim.endpoint}/drplan-sim/onprem/read_state", json={"vms": []}, verify=sim.ca_file, timeout=10
    )
    assert refused.status_code == 401


def test_a_token_is_generated_when_none_is_given():
    with start_simulator(small_estate(), speed=6000) as a, start_simulator(small_estate(), speed=6000) as b:
        assert len(a.token) >= 20 and a.token != b.token
        assert a.env()["DRPLAN_SIM_TOKEN"] == a.token
        assert _get(a, _items_url(a), b.token).status_code == 401


def _client(sim, token: str, statuses: list[int]) -> AsrClient:
    azure = AzureTarget(
        subscription_id=sim.subscription_id, resource_group=sim.resource_group, vault=sim.vault
    )
    return AsrClient.for_vault(
        azure,
        endpoint=sim.endpoint,
        ca_file=sim.ca_file,
        credential=StaticTokenCredential(token),
        clock=sim.clock,
        retry_total=3,
        raw_response_hook=lambda r: statuses.append(r.http_response.status_code),
    )


def test_the_adapter_sends_its_configured_credential_through_the_sdk(sim):
    statuses: list[int] = []
    refs = _client(sim, TOKEN, statuses).discover([VM])
    assert VM in refs and set(statuses) == {200}


def test_a_wrong_credential_is_a_permission_error_without_retry(sim):
    statuses: list[int] = []
    with pytest.raises(PermissionError_, match="not authorised \\(HTTP 401\\)") as err:
        _client(sim, "not-the-token", statuses).discover([VM])
    assert statuses == [401]  # refused once, never retried
    assert err.value.code == "InvalidAuthenticationToken"


def test_the_remote_site_sends_the_token_and_a_wrong_one_is_refused(sim):
    site = RemoteSite(sim.endpoint, ca_file=sim.ca_file, token=TOKEN)
    assert site.read_state([VM]).connected
    with pytest.raises(VCenterPermissionError, match="refused the bearer token.*DRPLAN_SIM_TOKEN"):
        RemoteSite(sim.endpoint, ca_file=sim.ca_file, token="not-the-token")


def test_an_external_simulator_run_uses_drplan_sim_token(sim, monkeypatch):
    monkeypatch.setenv("DRPLAN_SIM_ENDPOINT", sim.endpoint)
    monkeypatch.setenv("DRPLAN_SIM_CA_FILE", sim.ca_file)
    monkeypatch.setenv("DRPLAN_SIM_TOKEN", TOKEN)
    settings = Settings()
    assert settings.sim_token is not None and TOKEN not in repr(settings)  # a secret: never echoed
    with open_targets(PLAN, settings=settings) as targets:
        assert targets.mode == "external-sim"
        assert VM in targets.asr.discover([VM])
        assert targets.onprem.read_state([VM]).connected
    monkeypatch.setenv("DRPLAN_SIM_TOKEN", "stale-token-from-yesterday")
    with pytest.raises(VCenterPermissionError), open_targets(PLAN, settings=Settings()):
        pass


def test_the_embedded_simulator_run_uses_the_simulators_token():
    with open_targets(PLAN, simulate=True, settings=Settings.model_construct()) as targets:
        assert targets.mode == "simulate"
        assert VM in targets.asr.discover([VM])
