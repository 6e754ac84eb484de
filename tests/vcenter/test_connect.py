"""Connecting to vcsim: TLS verified against our CA; clear TLS, login, unreachable errors; no secret leaks."""

from __future__ import annotations

import logging
import socket

import pytest

from drplan.errors import VCenterLoginError, VCenterTlsError, VCenterUnreachable
from drplan.plan.schema import SecretRef, VCenterTarget
from drplan.vcenter import VCenterSite

from .vcsim_server import make_ca

pytestmark = pytest.mark.vcsim


def test_connects_with_the_ca_and_reads(vcsim):
    with vcsim.site() as site:
        state = site.read_state(["web-01"])
    assert state.connected and state.vms["web-01"].present


def test_without_the_ca_the_connection_is_refused(vcsim):
    # No CA file: the system trust store does not know our CA. pyVmomi must not fall back to an
    # unverified context on 127.0.0.1 (its loopback shortcut): we always pass our own context.
    with pytest.raises(VCenterTlsError) as err:
        vcsim.site(ca_file=None)
    assert "certificate verification failed" in str(err.value)
    assert "ca_file" in str(err.value)


def test_a_different_ca_is_refused(vcsim, tmp_path):
    other_ca, _, _ = make_ca(tmp_path, "some other CA")
    with pytest.raises(VCenterTlsError):
        vcsim.site(ca_file=str(other_ca))


def test_missing_ca_file_is_a_tls_error(vcsim, tmp_path):
    with pytest.raises(VCenterTlsError, match="does not exist"):
        vcsim.site(ca_file=str(tmp_path / "nope.pem"))


def test_insecure_must_be_explicit_and_warns(vcsim, caplog):
    caplog.set_level(logging.WARNING, logger="drplan.vcenter")
    with vcsim.site(ca_file=None, insecure=True) as site:
        assert site.read_state(["web-01"]).connected
    assert "TLS verification of vCenter's certificate is OFF" in caplog.text


def test_wrong_password_gives_a_clear_login_error(vcsim):
    wrong = "not-" + vcsim.password
    with pytest.raises(VCenterLoginError) as err:
        vcsim.site(password=wrong)
    message = str(err.value)
    assert "rejected the login" in message and vcsim.user in message
    assert wrong not in message and vcsim.password not in message


def test_password_is_never_logged(vcsim, caplog):
    with caplog.at_level(logging.DEBUG), vcsim.site() as site:
        site.read_state(["web-01"])
        assert vcsim.password not in repr(site.connection)
    assert vcsim.password not in caplog.text


def test_unreachable_vcenter(vcsim):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(VCenterUnreachable, match="connection refused"):
        VCenterSite("127.0.0.1", port=port, user=vcsim.user, password=vcsim.password, ca_file=vcsim.ca_file)


def _target(vcsim, password: SecretRef) -> VCenterTarget:
    return VCenterTarget(
        host=vcsim.host, port=vcsim.port, username=vcsim.user, password=password, ca_file=vcsim.ca_file
    )


def test_from_plan_reads_the_password_from_the_environment(vcsim, monkeypatch):
    monkeypatch.setenv("DRPLAN_TEST_VC_PASSWORD", vcsim.password)
    with VCenterSite.from_plan(_target(vcsim, SecretRef(env="DRPLAN_TEST_VC_PASSWORD"))) as site:
        assert site.read_state(["db-01"]).vms["db-01"].present


def test_from_plan_with_an_unset_variable_names_it(vcsim, monkeypatch):
    monkeypatch.delenv("DRPLAN_TEST_VC_UNSET", raising=False)
    with pytest.raises(VCenterLoginError, match="DRPLAN_TEST_VC_UNSET"):
        VCenterSite.from_plan(_target(vcsim, SecretRef(env="DRPLAN_TEST_VC_UNSET")))


def test_from_plan_resolves_a_prefect_secret_through_the_given_loader(vcsim):
    target = _target(vcsim, SecretRef(prefect_secret="vcsim-password"))
    blocks = {"vcsim-password": vcsim.password}
    with VCenterSite.from_plan(target, secret_loader=blocks.__getitem__) as site:
        assert site.read_state(["db-01"]).connected


def test_from_plan_accepts_an_already_resolved_password(vcsim):
    target = _target(vcsim, SecretRef(prefect_secret="never-loaded"))
    with VCenterSite.from_plan(target, password=vcsim.password) as site:
        assert site.read_state(["db-01"]).connected


def test_close_is_safe_twice(vcsim):
    site = vcsim.site()
    site.close()
    site.close()


def test_an_expired_session_is_renewed_transparently(vcsim):
    with vcsim.site() as site:
        assert site.read_state(["db-01"]).vms["db-01"].present
        site.connection.content.sessionManager.Logout()  # what vCenter does to idle sessions
        state = site.read_state(["db-01"])
        assert state.connected and state.vms["db-01"].present
        assert site.calls["RetrievePropertiesEx"] == 2  # the read that met NotAuthenticated stopped before it
        site.connection.content.sessionManager.Logout()
        site.set_guest_ip("db-01", None)  # a verb through a VM reference from the old session works too
