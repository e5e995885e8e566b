"""The PyGithub adapter against the fake GitHub: lookups before creates, App credentials."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from github import Github, RateLimitExceededException
from pydantic import SecretStr

from agentfleet.core.api import Stage
from agentfleet.core.github import (
    GitCheckout,
    GitError,
    GitHubCredentials,
    Pacing,
    RepoClient,
    marker,
    stage_permissions,
)
from agentfleet.core.redaction import Redactor
from agentfleet.dev.testing import FakeGitHub

from .conftest import new_app_keys

pytestmark = pytest.mark.integration


def test_issues_are_created_once_and_forged_markers_are_ignored(
    repo_client: RepoClient, human: Github, fake_github: FakeGitHub
) -> None:
    # A user pastes agentfleet's marker into an issue of their own: it must not count.
    human.get_repo("acme/shop").create_issue(
        "looks like a sub-task",
        body=marker("sub-task", parent=1, task=1),
        labels=["agentfleet:sub-task"],
    )
    first, created = repo_client.ensure_issue(
        "[#1] Add cart", "Do it.", ["agentfleet:sub-task"], "sub-task", parent=1, task=1
    )
    again, created_again = repo_client.ensure_issue(
        "[#1] Add cart", "Do it.", ["agentfleet:sub-task"], "sub-task", parent=1, task=1
    )
    assert created and not created_again
    assert again.number == first.number == 2
    assert first.author == "agentfleet-bot"
    assert fake_github.issue_titles("acme/shop") == ["looks like a sub-task", "[#1] Add cart"]


def test_comments_are_upserted_in_place(
    repo_client: RepoClient, human: Github, fake_github: FakeGitHub
) -> None:
    issue = human.get_repo("acme/shop").create_issue("Master", body="- [ ] a")
    issue.create_comment(f"human copy {marker('summary', master=issue.number)}")
    _, created = repo_client.upsert_comment(issue.number, "first", "summary", master=issue.number)
    _, created_again = repo_client.upsert_comment(
        issue.number, "second", "summary", master=issue.number
    )
    assert created and not created_again
    bodies = fake_github.comment_bodies("acme/shop", issue.number)
    assert len(bodies) == 2
    assert bodies[0].startswith("human copy")
    assert bodies[1].startswith("second")


async def test_pull_requests_are_reused_for_the_same_branch(
    repo_client: RepoClient, fake_github: FakeGitHub, tmp_path: Path
) -> None:
    # Without the token the Git host refuses even a clone (a private repository).
    anonymous = GitCheckout(tmp_path / "anonymous", repo_client.clone_url, Redactor())
    with pytest.raises(GitError, match="could not read Username"):
        await anonymous.clone()
    checkout = GitCheckout(
        tmp_path / "work", repo_client.clone_url, Redactor(), token=repo_client.git_token
    )
    await checkout.clone()
    assert await checkout.start_branch("main", "main") is False
    (checkout.path / "README.md").write_text("hello\n")
    assert await checkout.commit_all("Initial commit")
    await checkout.push("main")
    assert await checkout.start_branch("agentfleet/issue-1", "main") is False
    (checkout.path / "feature.py").write_text("x = 1\n")
    assert await checkout.commit_all("feature")
    assert not await checkout.commit_all("nothing changed")
    await checkout.push("agentfleet/issue-1")
    assert await checkout.changed_files("main") == ["feature.py"]

    pull, created = repo_client.ensure_pull("agentfleet/issue-1", "main", "Feature", "Closes #1")
    again, created_again = repo_client.ensure_pull("agentfleet/issue-1", "main", "Feature", "x")
    assert created and not created_again and again.number == pull.number
    assert fake_github.pull_heads("acme/shop") == ["agentfleet/issue-1"]
    assert [f.filename for f in repo_client.pull_files(pull.number)] == ["feature.py"]

    # A second checkout picks the pushed branch up instead of starting over.
    second = GitCheckout(
        tmp_path / "again", repo_client.clone_url, Redactor(), token=repo_client.git_token
    )
    await second.clone()
    assert await second.start_branch("agentfleet/issue-1", "main") is True
    assert (second.path / "feature.py").read_text() == "x = 1\n"


def test_github_app_credentials_act_as_the_app_installation(
    fake_github: FakeGitHub, app_credentials: GitHubCredentials
) -> None:
    client = RepoClient(
        app_credentials,
        "acme/shop",
        fake_github.base_url,
        Pacing.none(),
        permissions=stage_permissions(Stage.GENESIS),
    )
    try:
        assert client.login == "agentfleet-app[bot]"
        issue, _ = client.ensure_issue(
            "From the app", "body", ["agentfleet:sub-task"], "probe", n=1
        )
        assert issue.author == "agentfleet-app[bot]"
        assert client.git_token().startswith("ghs_")
    finally:
        client.close()

    other_key = new_app_keys().private_pem
    forged = GitHubCredentials(
        app_id=app_credentials.app_id, private_key=SecretStr(other_key), installation_id=77
    )
    with pytest.raises(Exception, match="401"):
        RepoClient(forged, "acme/shop", fake_github.base_url, Pacing.none()).issue(1)


async def test_git_failures_are_redacted(tmp_path: Path) -> None:
    secret = "ghp_" + "x" * 36
    checkout = GitCheckout(tmp_path / "w", f"file:///nonexistent/{secret}.git", Redactor([secret]))
    with pytest.raises(GitError) as failure:
        await checkout.clone()
    assert secret not in str(failure.value)
    assert "[REDACTED]" in str(failure.value)


def test_a_spent_rate_limit_fails_fast_instead_of_sleeping_until_reset(
    repo_client: RepoClient, fake_github: FakeGitHub
) -> None:
    # PyGithub's default retry would sleep until the reset, an hour here; the client caps
    # the wait, so the poll fails (and is retried on the next interval) instead.
    fake_github.rate_limit_until(time.time() + 3600)
    with pytest.raises(RateLimitExceededException):
        repo_client.open_issues_labelled("agentfleet")

    fake_github.rate_limit_until(None)
    assert repo_client.open_issues_labelled("agentfleet") == []
