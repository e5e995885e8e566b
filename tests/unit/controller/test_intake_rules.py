"""The operator's intake decisions, and the Project's API URL travelling with its work."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
import requests
from github import GithubException

from agentfleet.core.api import Stage
from agentfleet.core.api.conditions import Condition, find_condition, set_condition
from agentfleet.core.api.project import ProjectSpec, ProjectStatus
from agentfleet.core.github import GitHubCredentials, IssueFacts, ProjectIntake, issue_work
from agentfleet.core.pipeline import stage_item
from agentfleet.operator.config import OperatorConfig
from agentfleet.operator.intake import (
    INTAKE,
    PAUSED,
    IntakeState,
    github_problem,
    polling_state,
    secret_credentials,
    serves_namespace,
    transition_event,
    with_intake_condition,
)
from agentfleet.operator.logic import Problem, SecretLookup
from agentfleet.worker.stages.master import TaskRecord, development_item

pytestmark = pytest.mark.unit

NOW = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)
LATER = datetime(2025, 5, 1, 13, 0, tzinfo=UTC)


def _spec(**fields: object) -> ProjectSpec:
    return ProjectSpec.model_validate(
        {"repository": "acme/shop", "credentialsSecretRef": {"name": "gh"}, **fields}
    )


def _secret(**values: str) -> dict[str, object]:
    return {
        "metadata": {"name": "gh", "resourceVersion": "7"},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in values.items()},
    }


# ---------------------------------------------------------------- the API URL


def test_a_project_without_an_api_url_talks_to_github_com() -> None:
    state = polling_state("team-a", "shop", _spec(), webhook_port=0)
    assert "acme/shop (https://api.github.com)" in state.message
    item = issue_work(
        ProjectIntake.from_spec("team-a", "shop", _spec()),
        IssueFacts(number=4, title="t", labels=("agentfleet",)),
    )
    assert item is not None and "github_api_url" not in item.payload


def test_an_enterprise_repository_url_derives_its_api() -> None:
    spec = _spec(repository="https://git.corp.example/platform/shop")
    state = polling_state("team-a", "shop", spec, webhook_port=0)
    assert "platform/shop (https://git.corp.example/api/v3)" in state.message


def test_the_projects_api_url_is_used_and_carried_to_every_stage() -> None:
    spec = _spec(githubApiUrl="http://127.0.0.1:8443/api/v3", budgets={"tokensPerItem": 9000})
    assert "(http://127.0.0.1:8443/api/v3)" in polling_state("a", "shop", spec, 0).message
    genesis = issue_work(
        ProjectIntake.from_spec("team-a", "shop", spec),
        IssueFacts(number=4, title="t", labels=("agentfleet",)),
    )
    assert genesis is not None
    assert genesis.payload["github_api_url"] == "http://127.0.0.1:8443/api/v3"
    development = stage_item(genesis, Stage.DEVELOPMENT, 5)
    sub_task = development_item(genesis, TaskRecord(index=1, title="x", issue=6), master=4)
    for follow_up in (development, sub_task):
        assert follow_up.payload["github_api_url"] == "http://127.0.0.1:8443/api/v3"
        assert follow_up.payload["repository"] == "acme/shop"
        assert follow_up.payload["token_budget"] == 9000


@pytest.mark.parametrize(
    "url", ["ftp://host/api", "https://", "https://host/a b", "api.github.com"]
)
def test_api_urls_that_are_not_http_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="githubApiUrl"):
        _spec(githubApiUrl=url)


# ------------------------------------------------------------------ decisions


def test_the_webhook_url_is_in_the_polling_message_only_when_served() -> None:
    webhook = {"enabled": True, "secretRef": {"name": "gh", "key": "webhook-secret"}}
    spec = _spec(intake={"webhook": webhook, "pollIntervalSeconds": 60})
    served = polling_state("team-a", "shop", spec, webhook_port=8082)
    assert served.message.endswith(":8082/webhooks/github/team-a/shop")
    assert "every 60s" in served.message
    unserved = polling_state("team-a", "shop", spec, webhook_port=0)
    assert "no --webhook-port" in unserved.message


@pytest.mark.parametrize(
    ("lookup", "secret", "reason"),
    [
        (SecretLookup(missing=True), None, "CredentialsNotFound"),
        (SecretLookup(error="403 forbidden"), None, "CredentialsUnreadable"),
        (
            SecretLookup(keys=frozenset({"webhook-secret"})),
            _secret(**{"webhook-secret": "s"}),
            "CredentialsIncomplete",
        ),
        (
            SecretLookup(keys=frozenset({"token", "app-id", "private-key"})),
            _secret(token="t", **{"app-id": "1", "private-key": "k"}),
            "CredentialsInvalid",
        ),
    ],
)
def test_unusable_credentials_are_named(
    lookup: SecretLookup, secret: dict[str, object] | None, reason: str
) -> None:
    outcome = secret_credentials("gh", lookup, secret)
    assert isinstance(outcome, Problem)
    assert outcome.reason == reason
    assert "gh" in outcome.message


def test_a_token_secret_gives_credentials() -> None:
    outcome = secret_credentials("gh", SecretLookup(keys=frozenset({"token"})), _secret(token="t"))
    assert isinstance(outcome, GitHubCredentials)
    assert outcome.token is not None and outcome.token.get_secret_value() == "t"


@pytest.mark.parametrize(
    ("error", "reason", "detail"),
    [
        (GithubException(401, {"message": "Bad credentials"}, None), "GitHubUnauthorized", "401"),
        (GithubException(403, {"message": "rate limit"}, None), "GitHubForbidden", "rate limit"),
        (GithubException(404, {"message": "Not Found"}, None), "RepositoryNotFound", "404"),
        (GithubException(502, "bad gateway", None), "GitHubError", "bad gateway"),
        (requests.ConnectionError("refused"), "GitHubUnreachable", "ConnectionError"),
        (ValueError("repository 'x' is neither"), "InvalidRepository", "neither"),
    ],
)
def test_github_failures_become_reasons(error: Exception, reason: str, detail: str) -> None:
    problem = github_problem(error, "https://api.github.com", "acme/shop")
    assert problem.reason == reason
    assert detail in problem.message
    if reason.startswith("GitHub") or reason == "RepositoryNotFound":
        assert "acme/shop" in problem.message


def test_the_condition_keeps_the_other_conditions_and_its_transition_time() -> None:
    status = ProjectStatus(
        conditions=set_condition([], "Ready", True, "Valid", "", NOW, 1),
    )
    polling = IntakeState(True, "Polling", "taking issues in")
    first = with_intake_condition(status, polling, NOW, 1)
    again = with_intake_condition(first, polling, LATER, 1)
    assert again == first
    assert find_condition(again.conditions, "Ready") is not None
    paused = with_intake_condition(again, PAUSED, LATER, 2)
    condition = find_condition(paused.conditions, INTAKE)
    assert condition is not None
    assert (condition.status.value, condition.reason) == ("False", "Paused")
    assert condition.last_transition_time == LATER
    assert condition.observed_generation == 2


def test_events_are_posted_on_changes_only() -> None:
    polling = IntakeState(True, "Polling", "m")
    incomplete = IntakeState(False, "CredentialsIncomplete", "m")
    unauthorized = IntakeState(False, "GitHubUnauthorized", "m")

    def condition_of(state: IntakeState) -> Condition | None:
        return find_condition(
            with_intake_condition(ProjectStatus(), state, NOW, 1).conditions, INTAKE
        )

    assert transition_event(None, polling) == ("Normal", "IntakeStarted")
    assert transition_event(condition_of(polling), polling) is None
    assert transition_event(condition_of(polling), PAUSED) == ("Normal", "IntakePaused")
    assert transition_event(None, incomplete) == ("Warning", "CredentialsIncomplete")
    assert transition_event(condition_of(incomplete), incomplete) is None
    assert transition_event(condition_of(incomplete), unauthorized) == (
        "Warning",
        "GitHubUnauthorized",
    )
    assert transition_event(condition_of(PAUSED), polling) == ("Normal", "IntakeStarted")


def test_webhooks_are_answered_only_for_served_namespaces() -> None:
    scoped = OperatorConfig(namespaces=("team-*", "ops"))
    assert serves_namespace(scoped, "team-a")
    assert serves_namespace(scoped, "ops")
    assert not serves_namespace(scoped, "kube-system")
    assert serves_namespace(OperatorConfig(all_namespaces=True), "anything")
