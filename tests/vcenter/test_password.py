"""Where the vCenter password comes from: the caller, an environment variable, or a Prefect Secret block."""

from __future__ import annotations

import pytest

from drplan.errors import VCenterLoginError
from drplan.plan.schema import SecretRef
from drplan.vcenter import resolve_password


def test_explicit_password_wins():
    assert resolve_password(SecretRef(env="DRPLAN_TEST_UNUSED"), password="given") == "given"


def test_environment_variable(monkeypatch):
    monkeypatch.setenv("DRPLAN_TEST_VC_PW", "from-env")
    assert resolve_password(SecretRef(env="DRPLAN_TEST_VC_PW")) == "from-env"
    monkeypatch.setenv("DRPLAN_TEST_VC_PW", "")
    with pytest.raises(VCenterLoginError, match="environment variable DRPLAN_TEST_VC_PW"):
        resolve_password(SecretRef(env="DRPLAN_TEST_VC_PW"))


def test_prefect_secret_needs_a_loader_from_the_prefect_layer():
    ref = SecretRef(prefect_secret="vcenter-password")
    with pytest.raises(VCenterLoginError, match="'vcenter-password' needs Prefect to resolve it"):
        resolve_password(ref)
    assert resolve_password(ref, secret_loader={"vcenter-password": "from-block"}.__getitem__) == "from-block"


def test_a_failing_loader_names_the_block_but_not_its_error_text():
    def loader(name: str) -> str:
        raise ValueError("detail that could hold a secret")

    with pytest.raises(VCenterLoginError) as err:
        resolve_password(SecretRef(prefect_secret="vc"), secret_loader=loader)
    assert str(err.value) == "cannot load Prefect Secret block 'vc': ValueError"


def test_no_reference_at_all():
    with pytest.raises(VCenterLoginError, match="no vCenter password"):
        resolve_password(SecretRef())
