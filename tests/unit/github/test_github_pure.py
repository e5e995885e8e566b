"""Markers, credentials, repository endpoints and intake decisions (no I/O)."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from pydantic import ValidationError

from agentfleet.core.api import Stage
from agentfleet.core.api.project import ProjectSpec
from agentfleet.core.github import (
    CredentialsError,
    IssueFacts,
    ProjectIntake,
    PullInfo,
    credentials_from_secret_data,
    find_markers,
    has_marker,
    issue_work,
    marker,
    marker_field,
    repository_endpoint,
    signature_matches,
    webhook_work,
)
from agentfleet.core.github.events import DeliveryError, command_work, merged_pull_work
from agentfleet.core.pipeline import QualifierKind
from agentfleet.core.queue import Lane

pytestmark = pytest.mark.unit

PROJECT = ProjectIntake(namespace="team-a", name="shop", repository="acme/shop")


def test_markers_round_trip_and_match_on_fields() -> None:
    text = f"Body text\n\n{marker('sub-task', parent=12, task=3)}"
    assert find_markers(text)[0].fields == {"parent": "12", "task": "3"}
    assert has_marker(text, "sub-task", parent=12)
    assert has_marker(text, "sub-task", parent=12, task=3)
    assert not has_marker(text, "sub-task", parent=13)
    assert not has_marker(text, "summary")
    assert marker_field(text, "sub-task", "task") == "3"
    assert marker_field("no markers", "sub-task", "task") is None
    with pytest.raises(ValueError, match="without spaces"):
        marker("x", title="two words")


def test_credentials_from_a_token_secret_and_an_app_secret() -> None:
    encoded = {"token": base64.b64encode(b"ghp_token_value\n").decode()}
    token = credentials_from_secret_data(encoded, base64_encoded=True)
    assert token.token is not None and token.token.get_secret_value() == "ghp_token_value"
    assert not token.is_app
    app = credentials_from_secret_data(
        {
            "app-id": "42",
            "private-key": "-----BEGIN...",
            "installation-id": "7",
            "webhook-secret": "w",
        }
    )
    assert (app.is_app, app.app_id, app.installation_id) == (True, "42", 7)
    assert sorted(app.secret_values()) == ["-----BEGIN...", "w"]
    assert "ghp_token_value" not in repr(token)


@pytest.mark.parametrize(
    "data",
    [{}, {"app-id": "1"}, {"token": "t", "app-id": "1", "private-key": "k"}, {"token": " "}],
)
def test_unusable_credentials_are_refused(data: dict[str, str]) -> None:
    with pytest.raises(CredentialsError):
        credentials_from_secret_data(data)


@pytest.mark.parametrize(
    ("repository", "expected"),
    [
        ("acme/shop", ("https://api.github.com", "acme/shop")),
        ("https://github.com/acme/shop.git", ("https://api.github.com", "acme/shop")),
        ("https://ghe.corp.example/acme/shop", ("https://ghe.corp.example/api/v3", "acme/shop")),
        ("https://git.example:8443/acme/shop/", ("https://git.example:8443/api/v3", "acme/shop")),
    ],
)
def test_repository_endpoints(repository: str, expected: tuple[str, str]) -> None:
    assert repository_endpoint(repository) == expected


def test_repository_endpoint_override_and_garbage() -> None:
    assert repository_endpoint("acme/shop", "http://127.0.0.1:9/api/v3")[0] == (
        "http://127.0.0.1:9/api/v3"
    )
    with pytest.raises(ValueError, match="neither"):
        repository_endpoint("just-a-name")


def test_signature_verification() -> None:
    secret, body = b"s3cret", b'{"zen": "x"}'
    good = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    assert signature_matches(secret, body, good)
    assert not signature_matches(secret, body + b" ", good)
    assert not signature_matches(b"other", body, good)
    assert not signature_matches(secret, body, None)
    assert not signature_matches(secret, body, good.replace("sha256=", "sha1="))
    assert not signature_matches(b"", body, good)


def facts(
    number: int = 5, labels: tuple[str, ...] = ("agentfleet",), **extra: object
) -> IssueFacts:
    return IssueFacts.model_validate(
        {"number": number, "title": "Add cart", "labels": labels, **extra}
    )


def test_labelled_open_issue_becomes_one_first_stage_item_with_a_stable_id() -> None:
    item = issue_work(PROJECT, facts())
    assert item is not None
    assert item.id == "team-a/shop/issue-5/genesis"
    assert (item.stage, item.lane, item.payload) == (
        Stage.GENESIS,
        Lane.NORMAL,
        {"repository": "acme/shop", "issue": 5, "title": "Add cart"},
    )
    again = issue_work(PROJECT, facts())
    assert again is not None and again.id == item.id, "the id must not depend on when it is seen"


@pytest.mark.parametrize(
    "issue",
    [
        facts(labels=()),
        facts(labels=("bug",)),
        facts(state="closed"),
        facts(is_pull=True),
        facts(labels=("agentfleet", "agentfleet:sub-task")),
        facts(labels=("agentfleet", "agentfleet:diagnostic")),
    ],
)
def test_issues_that_are_not_taken_in(issue: IssueFacts) -> None:
    assert issue_work(PROJECT, issue) is None


def test_master_label_is_taken_in_and_paused_projects_take_nothing() -> None:
    assert issue_work(PROJECT, facts(labels=("agentfleet:master",))) is not None
    paused = PROJECT.model_copy(update={"paused": True})
    assert issue_work(paused, facts()) is None


def test_project_intake_from_a_project_spec() -> None:
    spec = ProjectSpec.model_validate(
        {
            "repository": "acme/shop",
            "credentialsSecretRef": {"name": "gh"},
            "intake": {"labels": ["build-me"]},
            "pipeline": {"stages": ["development", "content"]},
            "priority": "high",
            "parallelism": {"maxWorkers": 8},
            "budgets": {"tokensPerItem": 50000},
        }
    )
    project = ProjectIntake.from_spec("team-a", "shop", spec)
    item = issue_work(project, facts(labels=("build-me",)))
    assert item is not None
    assert (item.id, item.stage, item.lane) == (
        "team-a/shop/issue-5/development",
        Stage.DEVELOPMENT,
        Lane.HIGH,
    )
    assert item.pipeline == (Stage.DEVELOPMENT, Stage.CONTENT)
    assert item.payload["token_budget"] == 50000
    assert "parallelism" not in item.payload
    master = issue_work(project, facts(labels=("agentfleet:master",)))
    assert master is not None
    assert master.payload["parallelism"] == {
        "maxWorkers": 8,
        "successThreshold": 0.8,
        "taskTimeoutSeconds": 1800,
    }


def pull(head: str, merged: bool = True) -> PullInfo:
    return PullInfo(7, "t", "", "closed", merged, head, "main", "", "bot")


def test_merged_agentfleet_pull_requests_queue_content() -> None:
    item = merged_pull_work(PROJECT, pull("agentfleet/issue-3"))
    assert item is not None and item.id == "team-a/shop/pull-7/content"
    assert merged_pull_work(PROJECT, pull("agentfleet/issue-3", merged=False)) is None
    assert merged_pull_work(PROJECT, pull("feature/x")) is None
    assert merged_pull_work(PROJECT, pull("agentfleet/docs-issue-3")) is None
    no_content = PROJECT.model_copy(update={"stages": (Stage.GENESIS, Stage.DEVELOPMENT)})
    assert merged_pull_work(no_content, pull("agentfleet/issue-3")) is None


def test_a_command_item_is_one_per_comment() -> None:
    master = facts(labels=("agentfleet:master",))
    retry = command_work(PROJECT, master, 99, QualifierKind.RETRY_FAILED)
    assert retry.id == "team-a/shop/issue-5/genesis/retry-failed-99"
    assert retry.payload["retry_failed"] is True
    dry = command_work(PROJECT, master, 100, QualifierKind.DRY_RUN)
    assert dry.payload["dry_run"] is True and dry.id.endswith("/dry-run-100")


def test_webhook_payloads_map_to_items() -> None:
    repository = {"full_name": "acme/shop"}
    issue = {"number": 5, "title": "Add cart", "state": "open", "labels": [{"name": "agentfleet"}]}
    opened = webhook_work(
        PROJECT, "issues", {"action": "opened", "issue": issue, "repository": repository}
    )
    assert [item.id for item in opened] == ["team-a/shop/issue-5/genesis"]
    edited = webhook_work(
        PROJECT, "issues", {"action": "edited", "issue": issue, "repository": repository}
    )
    assert edited == []
    merged = {
        "number": 9,
        "title": "t",
        "state": "closed",
        "merged": True,
        "head": {"ref": "agentfleet/issue-5"},
        "base": {"ref": "main"},
        "user": {"login": "bot"},
    }
    closed = webhook_work(
        PROJECT,
        "pull_request",
        {"action": "closed", "pull_request": merged, "repository": repository},
    )
    assert [item.id for item in closed] == ["team-a/shop/pull-9/content"]
    assert webhook_work(PROJECT, "push", {"anything": 1}) == []


def test_webhook_payloads_that_do_not_fit_are_errors() -> None:
    with pytest.raises(ValidationError):
        webhook_work(PROJECT, "issues", {"action": "opened"})
    with pytest.raises(DeliveryError, match="other/repo"):
        webhook_work(
            PROJECT,
            "issues",
            {
                "action": "opened",
                "issue": {"number": 1, "title": "x", "state": "open", "labels": []},
                "repository": {"full_name": "other/repo"},
            },
        )
