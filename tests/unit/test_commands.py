"""Command decoding and the rejection messages people read."""

from __future__ import annotations

import uuid

import pytest
from pydantic import ValidationError

from agents.commands import CommandStage, describe_validation_error, natural_command_id
from agents.pipeline import Incoming
from streams.messages import CreateDashboardMetric, CreateMetric, RefreshMetric, TenantCommand
from tests.conftest import inbox_message


def _incoming(value: bytes | None, org: str = "o", partition: int = 0, offset: int = 7) -> Incoming:
    """A record ``org`` produced to its commands topic, as the ingress passes it on."""
    message = inbox_message(value, org, offset)
    if partition:
        envelope = TenantCommand.model_validate_json(message.value or b"")
        envelope = envelope.model_copy(update={"partition": partition})
        message = Incoming(message.topic, 0, offset, message.key, envelope.to_bytes())
    return message


def test_commands_decode_by_type() -> None:
    """The ``type`` field picks the command model."""
    stage = CommandStage()
    metric_id = uuid.uuid4()
    decoded = stage.decode(
        _incoming(
            b'{"type": "refresh_metric", "organization_id": "o", "metric_id": "%s"}'
            % str(metric_id).encode()
        )
    )
    assert isinstance(decoded, RefreshMetric) and decoded.metric_id == metric_id


def test_redelivered_command_derives_the_same_ids() -> None:
    """Ids derive from the command id, so a re-delivered command is idempotent."""
    command = CreateMetric(organization_id="o", template_id="t")
    again = CreateMetric.model_validate_json(command.to_bytes())
    assert again.resolved_metric_id() == command.resolved_metric_id()
    place = CreateDashboardMetric(organization_id="o", dashboard_id="d", metric_id=uuid.uuid4())
    assert CreateDashboardMetric.model_validate_json(
        place.to_bytes()
    ).resolved_dashboard_metric_id() == (place.resolved_dashboard_metric_id())


def test_rejection_of_malformed_json_names_the_problem() -> None:
    """Non-JSON gets a rejection naming the record (its natural command id, partition and
    offset) and a readable reason."""
    stage = CommandStage()
    with pytest.raises(ValueError, match="Invalid JSON") as info:
        stage.decode(_incoming(b"{nope"))
    sends = stage.rejected(_incoming(b"{nope"), info.value)
    assert len(sends) == 1
    result = sends[0].record
    assert sends[0].topic == "command-results"
    assert result.status == "rejected"  # type: ignore[attr-defined]
    assert result.command_id == natural_command_id("commands.o", 0, 7)  # type: ignore[attr-defined]
    assert (result.partition, result.offset) == (0, 7)  # type: ignore[attr-defined]
    assert "Invalid JSON" in (result.error or "")  # type: ignore[attr-defined]


def test_a_command_without_an_id_is_named_by_its_record() -> None:
    """Without ``command_id``, the same record decodes to the same command (a redelivery
    is recognised); another record with the same body is another command."""
    stage = CommandStage()
    body = (
        b'{"type": "refresh_metric", "organization_id": "o", "metric_id": "%s"}'
        % str(uuid.uuid4()).encode()
    )
    first = stage.decode(_incoming(body))
    assert stage.decode(_incoming(body)).command_id == first.command_id
    assert stage.decode(_incoming(body, offset=8)).command_id != first.command_id


@pytest.mark.parametrize(
    "value",
    [None, b"", b"\xff\xfe{}", b'{"type": "refresh_metric", "organization_id": "\\ud800"}'],
)
def test_null_empty_non_utf8_and_lone_surrogate_records_are_poison(value: bytes | None) -> None:
    """Each is refused at decoding (to its dead letter), with a rejection that names the
    record's partition and offset."""
    stage = CommandStage()
    message = _incoming(value, partition=1, offset=3)
    with pytest.raises(ValueError, match=r"no value|Invalid JSON|invalid|surrogate") as info:
        stage.decode(message)
    result = stage.rejected(message, info.value)[0].record
    assert (result.partition, result.offset) == (1, 3)  # type: ignore[attr-defined]


def test_nul_in_a_command_field_is_refused_at_decoding() -> None:
    """PostgreSQL text cannot hold NUL: the command is malformed, not a database error."""
    value = b'{"type": "create_metric", "template_id": "a\\u0000b"}'
    with pytest.raises(ValidationError, match="NUL"):
        CommandStage().decode(_incoming(value))


def test_rejection_keeps_the_command_id_when_it_can() -> None:
    """A schema error still answers to the caller's command id."""
    stage = CommandStage()
    command_id = str(uuid.uuid4())
    value = (
        b'{"type": "create_metric", "command_id": "%s", "params": {"a": 1}}' % command_id.encode()
    )
    with pytest.raises(ValidationError) as info:
        stage.decode(_incoming(value))
    result = stage.rejected(_incoming(value), info.value)[0].record
    assert str(result.command_id) == command_id  # type: ignore[attr-defined]
    message = describe_validation_error(info.value)
    assert "template_id: Field required" in message
    assert "params.a" in message


def test_unknown_command_type_is_named() -> None:
    """An unknown ``type`` says which types exist."""
    with pytest.raises(ValidationError) as info:
        CommandStage().decode(_incoming(b'{"type": "drop_everything", "organization_id": "o"}'))
    assert "create_metric" in describe_validation_error(info.value)


def test_the_organisation_is_the_topics_not_the_bodys() -> None:
    """A command without organization_id belongs to the organisation whose topic it came
    from; one naming another organisation is refused, and the refusal goes back to the
    sender's own results topic."""
    stage = CommandStage()
    body = b'{"type": "refresh_metric", "metric_id": "%s"}' % str(uuid.uuid4()).encode()
    assert stage.decode(_incoming(body, org="acme")).organization_id == "acme"
    forged = (
        b'{"type": "refresh_metric", "organization_id": "beta", "metric_id": "%s"}'
        % str(uuid.uuid4()).encode()
    )
    message = _incoming(forged, org="acme")
    with pytest.raises(ValueError, match="names organisation 'beta'") as info:
        stage.decode(message)
    [answer] = stage.rejected(message, info.value)
    assert (answer.topic, answer.org) == ("command-results", "acme")
