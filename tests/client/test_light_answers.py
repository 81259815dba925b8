"""The light records (``tracker_ci.wire.light``) against the wire models they stand for.

The pydantic models are the one definition of the wire format: the records' table is
derived from them here and must be equal, real answers of the bundled server must read
the same both ways, and what one refuses the other refuses.
"""

from __future__ import annotations

import enum
import json
import types
from collections.abc import Iterator
from typing import Any, Union, get_args, get_origin

import annotated_types
import httpx
import pytest
from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel

from tests.support.receivers import run_receiver
from tests.support.servers import RunningServer
from tracker_ci import models
from tracker_ci.client import TrackerClient
from tracker_ci.exceptions import UnexpectedResponse
from tracker_ci.wire import base, light

#: The scalar kinds and the field types of wire.base (or Python's) they stand for.
SCALAR_FORMS: dict[str, Any] = {
    "text": base.Text,
    "int": int,
    "int64": base.Int64,
    "float?": float | None,
    "flag": base.Flag,
    "bool": bool,
    "timestamp?": base.Timestamp | None,
    "duration?": base.Duration | None,
    "texts": base.TextList,
}
ENUMS = ("EventType", "Priority", "Status", "Environment", "ChangeType")


def _kind(field: Any) -> str:
    """The light kind of a pydantic field, read from its annotation (AssertionError when
    the light decoder has no kind for it: teach it the new type)."""
    rebuilt = field.rebuild_annotation()
    for kind, form in SCALAR_FORMS.items():
        if rebuilt == form:
            return kind
    for name in ENUMS:
        if rebuilt == getattr(base, f"{name}Field"):
            return f"enum:{name}"
    annotation, metadata = field.annotation, list(field.metadata)
    origin, args = get_origin(annotation), get_args(annotation)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum) and not metadata:
        return "choice:" + "|".join(member.value for member in annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel) and not metadata:
        return f"record:{annotation.__name__}"
    if origin in (Union, types.UnionType) and len(args) == 2 and args[1] is type(None):
        assert issubclass(args[0], BaseModel) and not metadata, field
        return f"record?:{args[0].__name__}"
    if origin is list and issubclass(args[0], BaseModel):
        if not metadata:
            return f"records:{args[0].__name__}"
        null_as_empty, most = metadata
        assert null_as_empty == BeforeValidator(base.none_to_list), field
        assert isinstance(most, annotated_types.MaxLen), field
        return f"records?{most.max_length}:{args[0].__name__}"
    raise AssertionError(f"the light decoder has no kind for {field}")


def _default(field: Any) -> Any:
    value = field.get_default(call_default_factory=True)
    if isinstance(value, (list, BaseModel)):
        return None  # a fresh empty one
    return value.value if isinstance(value, enum.Enum) else value


def _derived(name: str) -> tuple[tuple[str, str, str, Any], ...]:
    model = getattr(models, name)
    return tuple(
        (attribute, field.alias or attribute, _kind(field), _default(field))
        for attribute, field in model.model_fields.items()
    )


@pytest.mark.unit
@pytest.mark.parametrize("name", sorted(light.RECORDS))
def test_each_record_has_its_wire_models_fields_names_types_and_defaults(name: str) -> None:
    assert light.RECORDS[name] == _derived(name)


@pytest.mark.unit
def test_every_record_a_record_holds_is_a_record_too() -> None:
    for fields in light.RECORDS.values():
        for _attribute, _wire, kind, _default_value in fields:
            if kind.startswith("record"):
                assert kind.split(":", 1)[1] in light.RECORDS, kind


@pytest.fixture
def http(sqlite_server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sqlite_server.url, timeout=10) as client:
        yield client


def _same(name: str, content: bytes) -> Any:
    """Read an answer both ways; the same JSON, and the record's model is the model."""
    model = getattr(models, name).model_validate_json(content)
    record = light.decode(name, content)
    assert record.to_wire() == model.to_wire()
    assert record.model() == model
    return record


@pytest.mark.server
def test_real_answers_of_the_hot_paths_read_the_same_both_ways(
    http: httpx.Client, service: str
) -> None:
    api = models.API_PREFIX
    # A deployment event (it takes the lock), then closing it as success.
    body = models.CreateEventRequest(
        title="light",
        attributes=models.EventAttributes(
            type=models.EventType.deployment,
            status=models.Status.start,
            service=service,
            environment=models.Environment.production,
            priority=models.Priority.P2,
            start_date=models.utcnow(),
            stake_holders=["ops"],
            changes=[models.ShippedChange(id="abc", title="fix", merged_at=models.utcnow())],
        ),
    ).to_wire()
    created = http.post(f"{api}/event", json=body)
    assert created.status_code == 200, created.text
    event = _same("EventResponse", created.content).event
    assert event.id and event.attributes.status is models.Status.start
    assert event.attributes.changes[0].kind == "commit"
    locks = _same("LockListResponse", http.get(f"{api}/locks/list").content)
    mine = [lock for lock in locks.locks if lock.event_id == event.id]
    assert len(mine) == 1 and mine[0].fence >= 1 and mine[0].created_at is not None
    # Someone else queues behind it: the queue's answer.
    queued = http.post(
        f"{api}/lock/queue",
        json={"service": service, "environment": "production", "who": "bob", "waitSeconds": 0},
    )
    assert queued.status_code == 200, queued.text
    place = _same("QueueResponse", queued.content)
    assert place.ticket.state == "waiting" and place.lock.id == mine[0].id
    assert http.delete(f"{api}/lock/queue/{place.ticket.ticket}").status_code == 200
    found = http.get(f"{api}/events/search", params={"service": service})
    _same("EventListResponse", found.content)
    update = {**event.to_wire(), "id": event.id}
    update["attributes"]["status"] = "success"
    closed = http.put(f"{api}/event", json=update)
    assert closed.status_code == 200, closed.text
    after = _same("EventResponse", closed.content).event
    assert after.attributes.status is models.Status.success
    assert after.metadata.duration is not None
    # A lock of its own, released by id; and health.
    lock_body = {"service": service, "environment": "staging", "who": "me", "resource": "db"}
    taken = http.post(f"{api}/lock", json=lock_body)
    assert taken.status_code == 200, taken.text
    lock = _same("LockResponse", taken.content).lock
    released = _same("UnlockResponse", http.get(f"{api}/unlock/{lock.id}").content)
    assert released.count == 1
    assert _same("HealthResponse", http.get("/health").content).status == "ok"


#: Answers the models refuse; the records must refuse each too.
REFUSED = [
    ("UnlockResponse", "not json"),
    ("UnlockResponse", "[]"),
    ("UnlockResponse", '{"count": "many"}'),
    ("UnlockResponse", '{"count": 1.5}'),
    ("UnlockResponse", '{"count": null}'),
    ("UnlockResponse", '{"id": 7}'),
    ("LockResponse", '{"lock": "abc"}'),
    ("LockResponse", '{"lock": {"createdAt": "yesterday"}}'),
    ("LockResponse", '{"lock": {"createdAt": ""}}'),
    ("LockResponse", '{"lock": {"fence": "1e3"}}'),
    ("QueueResponse", '{"queue": null}'),
    ("QueueResponse", '{"ticket": {"expectedWaitSeconds": "soon"}}'),
    ("EventResponse", '{"event": {"attributes": null}}'),
    ("EventResponse", '{"event": {"attributes": {"status": "finished-ish"}}}'),
    ("EventResponse", '{"event": {"attributes": {"impact": "yes"}}}'),
    ("EventResponse", '{"event": {"attributes": {"stakeHolders": [1]}}}'),
    ("EventResponse", '{"event": {"attributes": {"changes": [{"kind": "tag"}]}}}'),
    ("EventResponse", json.dumps({"event": {"attributes": {"changes": [{}] * 101}}})),
    ("EventResponse", '{"event": {"metadata": {"duration": "long"}}}'),
    ("EventListResponse", '{"totalCountExact": "maybe"}'),
    ("HealthResponse", '{"status": ["ok"]}'),
]

#: Answers both read, the same way (spellings a Tracker may send).
READ = [
    ("UnlockResponse", '{"count": "12"}'),
    ("UnlockResponse", '{"count": " 7 ", "message": null}'),
    ("UnlockResponse", '{"count": 3.0, "extra": {"ignored": true}}'),
    ("LockResponse", '{"lock": null}'),
    ("LockResponse", '{"lock": {"fence": "3", "created_at": "2026-01-31T12:00:00.123456789Z"}}'),
    ("LockResponse", '{"lock": {"event_id": "x", "eventId": "y", "expiresAt": "2026-02-01"}}'),
    ("EventResponse", '{"event": {"attributes": {"status": 2, "environment": "eu-west-1"}}}'),
    ("EventResponse", '{"event": {"attributes": {"type": null, "changes": null}}}'),
    ("EventResponse", '{"event": {"metadata": {"duration": "125.402113945s"}}}'),
    ("EventListResponse", '{"events": [], "totalCountExact": "false"}'),
    ("QueueResponse", '{"ticket": {"expectedWaitSeconds": "1.5", "position": true}}'),
]


@pytest.mark.unit
@pytest.mark.parametrize(("name", "content"), REFUSED)
def test_what_the_model_refuses_the_record_refuses(name: str, content: str) -> None:
    with pytest.raises(ValidationError):
        getattr(models, name).model_validate_json(content)
    with pytest.raises(light.RecordError):
        light.decode(name, content)


@pytest.mark.unit
@pytest.mark.parametrize(("name", "content"), READ)
def test_what_the_model_reads_the_record_reads_alike(name: str, content: str) -> None:
    _same(name, content.encode())


@pytest.mark.unit
def test_a_body_built_light_is_the_body_the_model_writes() -> None:
    given = {"service": "api", "environment": "eu-west-1", "who": "me", "event_id": "e-1"}
    for values in (given, {**given, "resource": "db", "id": "l-1"}, {}):
        record = light.build("ReleaseLockRequest", **values)
        assert record.to_wire() == models.ReleaseLockRequest(**values).to_wire()
    with pytest.raises(ValidationError):
        models.ReleaseLockRequest(who=7)  # type: ignore[arg-type]
    with pytest.raises(light.RecordError):
        light.build("ReleaseLockRequest", who=7)
    with pytest.raises(TypeError):
        light.build("ReleaseLockRequest", holder="me")


@pytest.mark.unit
def test_a_count_that_is_no_count_is_an_unexpected_answer_naming_the_field() -> None:
    with (
        run_receiver(lambda _request: (200, {"count": "many"})) as receiver,
        TrackerClient(base_url=receiver.url, retries=0) as client,
        pytest.raises(UnexpectedResponse) as raised,
    ):
        client.release_lock("abc")
    message = str(raised.value)
    assert "GET /api/v1alpha1/unlock/abc with HTTP 200 but not the expected JSON" in message
    assert "count: must be a whole number, not 'many'" in message


# ------------------------------------------------- the deploy path's bodies and state
def _deployment(**options: Any) -> Any:
    from tracker_ci.deploy import Deployment, DeploymentOptions

    # No request is sent: the bodies are only written.
    client = TrackerClient(base_url="http://127.0.0.1:9", retries=0)
    return Deployment(client, DeploymentOptions(**options))


DEPLOY_OPTIONS: list[dict[str, Any]] = [
    {"service": "api", "environment": "production"},
    {
        "service": "api",
        "environment": "eu-west-1",
        "title": "Ship it",
        "message": "CI run: https://ci/1",
        "priority": "P1",
        "owner": "ana",
        "pr_url": "https://github.com/o/r/pull/7",
        "ticket": "OPS-1",
        "source": "github-actions",
        "reason": "hotfix",
        "break_glass": "incident 12",
        "job_url": "https://ci/1",
        "lock": False,
    },
]


@pytest.mark.unit
@pytest.mark.parametrize("options", DEPLOY_OPTIONS)
@pytest.mark.parametrize("shipped", [False, True])
def test_the_deploy_start_body_written_light_is_the_body_the_model_writes(
    options: dict[str, Any], shipped: bool
) -> None:
    from tracker_ci.changes import Shipped

    deployment = _deployment(**options)
    if shipped:
        change = models.ShippedChange(
            kind=models.ChangeKind.pull_request,
            id="7",
            title="fix",
            merged_at=light.parse_timestamp("2026-01-31T12:00:00Z"),
        )
        deployment.shipped = Shipped(revision="abc123", changes=[change])
    body = deployment._create_body()
    started = light.parse_timestamp(body["attributes"]["startDate"])
    assert started is not None  # now, written once
    status = models.Status.start if options.get("lock", True) else models.Status.open
    model = models.CreateEventRequest(
        title=deployment.title,
        attributes=models.EventAttributes(
            message=deployment.options.message,
            source=deployment.options.source,
            type=models.EventType.deployment,
            priority=deployment.priority,
            service=deployment.service,
            status=status,
            environment=deployment.environment,
            start_date=started,
            owner=deployment.owner,
            revision="abc123" if shipped else "",
            changes=list(deployment.shipped.changes) if shipped else [],
        ),
        links=models.EventLinks(
            pull_request_link=deployment.pr_url, ticket=deployment.options.ticket
        ),
        lock_reason=deployment.options.reason,
        job_url=deployment.options.job_url,
        break_glass=deployment.options.break_glass,
    )
    assert body == model.to_wire()
    assert json.dumps(body) == json.dumps(model.to_wire())  # the same keys in the same order

    # A deployment recorded once it ended (finish --record-if-none): closed, with dates.
    ended = models.utcnow()
    recorded = deployment._create_body(
        models.Status.failure, started=started, ended=ended, message="rolled back"
    )
    attributes = model.attributes.model_copy(
        update={"status": models.Status.failure, "end_date": ended}
    )
    old = attributes.message
    attributes.message = f"{old}\nrolled back" if old else "rolled back"
    assert recorded == model.model_copy(update={"attributes": attributes}).to_wire()


@pytest.mark.unit
@pytest.mark.parametrize("end_date", [None, "2026-01-31T13:00:00Z"])
@pytest.mark.parametrize("message", [None, "the deploy command exited with code 2"])
@pytest.mark.parametrize("close", [True, False])
def test_the_deploy_finish_body_written_light_is_the_body_the_model_writes(
    end_date: str | None, message: str | None, close: bool
) -> None:
    from tracker_ci.deploy import _update_body

    answer = json.dumps(
        {
            "event": {
                "title": "Deploy api",
                "attributes": {
                    "message": "CI run" if message else "",
                    "type": "deployment",
                    "status": "start",
                    "service": "api",
                    "environment": "eu-west-1",
                    "startDate": "2026-01-31T12:00:00Z",
                    "endDate": end_date,
                    "stakeHolders": ["ops"],
                    "changes": [{"kind": "commit", "id": "abc"}],
                },
                "links": {"pullRequestLink": "https://github.com/o/r/pull/7"},
                "metadata": {"id": "e-1", "slackId": "s-1", "createdAt": "2026-01-31T12:00:00Z"},
            }
        }
    )
    record = light.decode("EventResponse", answer).event
    event = models.EventResponse.model_validate_json(answer).event
    assert event is not None
    for given in (record, event):  # the plain record and the model write the same body
        body = _update_body(given, models.Status.success, message, close=close)
        attributes = event.attributes.model_copy(update={"status": models.Status.success})
        if close:
            if message:
                attributes.message = f"{attributes.message}\n{message}"
            if attributes.end_date is None:  # now: read back from the body
                attributes.end_date = light.parse_timestamp(body["attributes"]["endDate"])
        model = models.UpdateEventRequest(
            id=event.id,
            title=event.title,
            attributes=attributes,
            links=event.links,
            slack_id=event.metadata.slack_id,
        )
        assert json.dumps(body) == json.dumps(model.to_wire())


class _PydanticDeploymentState(BaseModel):
    """DeploymentState as it was (a pydantic model): what its output must stay."""

    model_config = ConfigDict(alias_generator=to_camel, validate_by_name=True)

    event_id: str = ""
    lock_id: str = ""
    service: str = ""
    environment: str = ""
    status: str = ""
    started_at: base.Timestamp | None = None
    duration: float | None = None
    event_url: str = ""


@pytest.mark.unit
@pytest.mark.parametrize(
    "values",
    [
        {},
        {"event_id": "e-1", "lock_id": "l-1", "service": "api", "environment": "eu-west-1"},
        {"status": "success", "started_at": "2026-11-23T10:00:00.5Z", "duration": 12},
        {"started_at": "2026-11-23T12:00:00+02:00", "duration": 0.25, "event_url": "http://t/e"},
        {"status": "untracked", "started_at": models.utcnow(), "duration": None},
    ],
)
def test_the_deployment_state_writes_what_the_pydantic_state_wrote(values: dict[str, Any]) -> None:
    from tracker_ci.deploy_state import DeploymentState

    state = DeploymentState(**values, fence=3, detail="why", left_open=True)
    before = _PydanticDeploymentState(**values).model_dump(mode="json", by_alias=True)
    assert json.dumps(state.to_dict()) == json.dumps(before)
