"""Error mapping onto drplan.errors, for faults vcsim cannot produce (it enforces no permissions)."""

from __future__ import annotations

import ssl

from pyVmomi import vim

from drplan.errors import VCenterLoginError, VCenterPermissionError, VCenterTlsError, VCenterUnreachable
from drplan.vcenter.connect import map_error


def test_no_permission_names_the_privilege_and_user():
    fault = vim.fault.NoPermission(privilegeId="VirtualMachine.Interact.PowerOn")
    err = map_error(fault, "powering on web-01", user="drplan@vsphere.local")
    assert isinstance(err, VCenterPermissionError)
    assert str(err) == (
        "powering on web-01: user 'drplan@vsphere.local' lacks permission "
        "VirtualMachine.Interact.PowerOn in vCenter"
    )


def test_each_connection_failure_has_its_own_class():
    assert isinstance(map_error(vim.fault.InvalidLogin(), "x", user="u"), VCenterLoginError)
    assert isinstance(map_error(vim.fault.NotAuthenticated(), "x"), VCenterLoginError)
    assert isinstance(map_error(ConnectionRefusedError(), "x"), VCenterUnreachable)
    assert isinstance(map_error(ConnectionResetError(), "x"), VCenterUnreachable)
    assert isinstance(map_error(TimeoutError(), "x"), VCenterUnreachable)
    assert isinstance(
        map_error(ssl.SSLEOFError(8, "EOF occurred in violation of protocol"), "x"), VCenterUnreachable
    )  # a pooled connection the stopped server closed
    plain_http = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")
    tls = map_error(plain_http, "connecting")
    assert isinstance(tls, VCenterTlsError) and "plain HTTP" in str(tls)
