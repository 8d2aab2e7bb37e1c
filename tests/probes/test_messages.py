"""The message probe: the control decides whether a refusal is the probed shape's."""

from __future__ import annotations

from typing import Any

import pytest

from conformance.observation import ProbeError
from conformance.probes.messages import message_accepted
from tests.probes._fake import completion, context, refusal


def _refuse_names(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    if any("name" in message for message in body["messages"]):
        return refusal(status=500, code="internal_server_error")
    return completion("alpha")


def test_a_5xx_for_the_probed_shape_only_is_a_server_error() -> None:
    ctx, sent = context("messages.name", _refuse_names)
    observation = message_accepted(ctx)
    assert observation.outcome == "server_error"
    assert "500" in observation.summary
    # The 5xx is an outcome only because a fresh request got it again.
    names = [body["messages"][0].get("name") for body in sent]
    assert names == [None, "harbour_master", "harbour_master"]


def test_a_refused_control_is_no_observation() -> None:
    ctx, _ = context("messages.developer_role", lambda body: refusal())
    with pytest.raises(ProbeError, match="control"):
        message_accepted(ctx)


def test_developer_role_against_a_system_control() -> None:
    ctx, sent = context(
        "messages.developer_role",
        lambda body: refusal() if body["messages"][0]["role"] == "developer" else completion(),
    )
    assert message_accepted(ctx).outcome == "rejected"
    assert [body["messages"][0]["role"] for body in sent] == ["system", "developer"]
