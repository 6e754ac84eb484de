"""The approval form a person fills in (Prefect UI or API): not approved unless ticked, a name required."""

from __future__ import annotations

import pytest
from pydantic import ValidationError


def test_the_approval_form_is_not_approved_by_default_and_needs_a_name() -> None:
    from flows.run import ApprovalInput

    schema = ApprovalInput.model_json_schema()
    assert schema["properties"]["approved"]["default"] is False
    assert "approver" in schema["required"]
    with pytest.raises(ValidationError):
        ApprovalInput(approved=True, approver="")
    assert ApprovalInput(approver="night-lead").approved is False
