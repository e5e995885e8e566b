"""Narrow credentials against the fake GitHub, through the real PyGithub and real git.

With a GitHub App each work item gets its own installation token, minted for the item's
repository and its stage's permissions; the fake GitHub enforces that scope as GitHub
does (another repository is not found, a missing permission is refused, over the REST API
and over git's smart HTTP alike), so every assertion here can fail. A personal access
token still works, with its whole reach.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import anthropic
import pytest
from github import Auth, Github, GithubException, UnknownObjectException
from pydantic import SecretStr

from agentfleet.core.api import Stage
from agentfleet.core.github import (
    INTAKE_PERMISSIONS,
    SCAFFOLD_PERMISSIONS,
    SUB_TASK_LABEL,
    GitCheckout,
    GitError,
    GitHubCredentials,
    Pacing,
    RepoClient,
    TokenError,
    stage_permissions,
)
from agentfleet.core.github.git import basic_credential
from agentfleet.core.github.tokens import REFRESH_MARGIN, utc_now
from agentfleet.core.queue import WorkItem
from agentfleet.core.redaction import REDACTED, Redactor
from agentfleet.dev.testing import FakeGitHub
from agentfleet.worker.agents import AgentSettings
from agentfleet.worker.stages import StageConfig, StageEnvironment

from .conftest import BOT_TOKEN, AppKeys

pytestmark = pytest.mark.integration


class Clock:
    """The time of the fake GitHub and of the worker alike."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now


def _environment(
    fake: FakeGitHub, credentials: GitHubCredentials, clock: Clock | None = None
) -> StageEnvironment:
    return StageEnvironment(
        config=StageConfig(github_api_url=fake.base_url, github_pacing=False),
        agent_settings=AgentSettings(model="claude-sonnet-4-6"),
        model_client=anthropic.AsyncAnthropic(api_key="unused", base_url="http://127.0.0.1:9"),
        credentials=lambda namespace, project: credentials,
        redactor=Redactor(),
        clock=utc_now if clock is None else clock,
    )


def _item(number: int, repository: str = "acme/shop") -> WorkItem:
    return WorkItem(
        id=f"team-a/shop/issue-{number}/development",
        namespace="team-a",
        project="shop",
        stage=Stage.DEVELOPMENT,
        payload={"repository": repository, "issue": number},
    )


def _github(fake: FakeGitHub, token: str) -> Github:
    return Github(
        base_url=fake.base_url,
        auth=Auth.Token(token),
        seconds_between_requests=None,
        seconds_between_writes=None,
    )


def _checkout(tmp_path: Path, name: str, repo: RepoClient) -> GitCheckout:
    return GitCheckout(
        tmp_path / name,
        repo.clone_url,
        Redactor(),
        token=repo.git_token,
        git_dir=tmp_path / f"{name}.git",
    )


async def _push_a_branch(checkout: GitCheckout, branch: str) -> None:
    await checkout.clone()
    await checkout.start_branch(branch, "main")
    (checkout.path / "feature.py").write_text("x = 1\n")
    assert await checkout.commit_all("feature")
    await checkout.push(branch)


async def test_each_item_gets_its_own_token_for_its_repository_and_stage(
    fake_github: FakeGitHub, app_credentials: GitHubCredentials
) -> None:
    env = _environment(fake_github, app_credentials)
    development = stage_permissions(Stage.DEVELOPMENT)
    async with (
        env.github(_item(1), development) as first,
        env.github(_item(2), development) as second,
    ):
        assert first is not second
        assert fake_github.minted == []  # minted when first needed, not before
        one, two = first.git_token(), second.git_token()
        assert one != two
        assert first.login == "agentfleet-app[bot]"
    assert [m.token for m in fake_github.minted] == [one, two]
    for minted in fake_github.minted:
        assert minted.repositories == frozenset({"acme/shop"})
        assert minted.permissions == dict(development)


async def test_a_token_for_one_repository_is_refused_on_another(
    fake_github: FakeGitHub, app_credentials: GitHubCredentials, tmp_path: Path
) -> None:
    fake_github.create_repo("acme", "other")
    env = _environment(fake_github, app_credentials)
    async with env.github(_item(1), stage_permissions(Stage.DEVELOPMENT)) as repo:
        token = repo.git_token()
        github = _github(fake_github, token)
        try:
            assert github.get_repo("acme/shop").full_name == "acme/shop"
            with pytest.raises(UnknownObjectException):
                github.get_repo("acme/other")
            with pytest.raises(UnknownObjectException):
                github.requester.requestJsonAndCheck(
                    "POST", "/repos/acme/other/issues", input={"title": "nope"}
                )
        finally:
            github.close()
        # Git over HTTP: the item's own repository clones, the other one is not found.
        await _checkout(tmp_path, "shop", repo).clone()
        other = GitCheckout(
            tmp_path / "other",
            repo.clone_url.replace("/shop.git", "/other.git"),
            Redactor(),
            token=repo.git_token,
            git_dir=tmp_path / "other.git",
        )
        with pytest.raises(GitError, match="not found"):
            await other.clone()


async def test_a_token_without_contents_write_cannot_push(
    fake_github: FakeGitHub, app_credentials: GitHubCredentials, tmp_path: Path
) -> None:
    env = _environment(fake_github, app_credentials)
    async with env.github(_item(1), stage_permissions(Stage.REVIEW)) as reviewer:
        with pytest.raises(GitError, match="403"):
            await _push_a_branch(_checkout(tmp_path, "review", reviewer), "agentfleet/issue-1")
        # Nor can it open a pull request, or create an issue on the intake's token.
        with pytest.raises(GithubException) as refused:
            reviewer.ensure_pull("agentfleet/issue-1", "main", "x", "y")
        assert refused.value.status == 403
    assert "agentfleet/issue-1" not in fake_github.branches("acme/shop")

    async with env.github(_item(1), stage_permissions(Stage.DEVELOPMENT)) as developer:
        await _push_a_branch(_checkout(tmp_path, "develop", developer), "agentfleet/issue-1")
    assert "agentfleet/issue-1" in fake_github.branches("acme/shop")


async def test_genesis_reads_code_and_pushes_a_scaffold_only_with_a_token_of_its_own(
    fake_github: FakeGitHub, app_credentials: GitHubCredentials, tmp_path: Path
) -> None:
    env = _environment(fake_github, app_credentials)
    async with env.github(_item(1), stage_permissions(Stage.GENESIS)) as genesis:
        checkout = env.checkout(genesis, tmp_path / "genesis", tmp_path / "genesis.git")
        await checkout.clone()
        await checkout.start_branch("main", "main")
        (checkout.path / "README.md").write_text("# shop\n")
        assert await checkout.commit_all("Scaffold")
        with pytest.raises(GitError, match="403"):
            await checkout.push("main")
        async with env.github(_item(1), SCAFFOLD_PERMISSIONS) as pusher:
            await checkout.with_token(pusher.git_token).push("main")
        # The stage's own token still writes issues, which the scaffold token cannot.
        genesis.ensure_issue("[#1] Task", "body", [SUB_TASK_LABEL], "sub-task", parent=1, task=1)
        with pytest.raises(TokenError, match="has ended"):
            pusher.git_token()
    assert "main" in fake_github.branches("acme/shop")
    scaffold = next(m for m in fake_github.minted if m.permissions.get("contents") == "write")
    assert scaffold.permissions == dict(SCAFFOLD_PERMISSIONS)


async def test_the_token_is_revoked_and_forgotten_when_the_item_ends(
    fake_github: FakeGitHub, app_credentials: GitHubCredentials
) -> None:
    env = _environment(fake_github, app_credentials)
    with pytest.raises(RuntimeError, match="the handler failed"):
        async with env.github(_item(1), stage_permissions(Stage.DEVELOPMENT)) as repo:
            token = repo.git_token()
            # The redactor knows the token, and the form git sends it in, from the start.
            assert env.redactor.redact(basic_credential(token)) == REDACTED
            assert fake_github.token_is_valid(token)
            raise RuntimeError("the handler failed")
    assert not fake_github.token_is_valid(token)
    github = _github(fake_github, token)
    try:
        with pytest.raises(GithubException) as refused:
            github.get_repo("acme/shop")
        assert refused.value.status == 401
    finally:
        github.close()
    # A token that no longer works is no longer a secret the redactor has to carry.
    assert env.redactor.redact(basic_credential(token)) == basic_credential(token)


async def test_a_token_near_its_expiry_is_replaced_before_use(
    fake_github: FakeGitHub, app_credentials: GitHubCredentials, tmp_path: Path
) -> None:
    clock = Clock()
    fake_github.clock = clock
    env = _environment(fake_github, app_credentials, clock)
    async with env.github(_item(1), stage_permissions(Stage.DEVELOPMENT)) as repo:
        first = repo.git_token()
        clock.now += timedelta(hours=1) - REFRESH_MARGIN
        second = repo.git_token()
        assert second != first
        assert fake_github.token_is_valid(first)  # not yet expired: it may be in use
        clock.now += REFRESH_MARGIN
        assert not fake_github.token_is_valid(first)
        # The client and git go on with the new token.
        assert repo.find_pull("agentfleet/issue-1") is None
        await _push_a_branch(_checkout(tmp_path, "late", repo), "agentfleet/issue-1")
        assert repo.git_token() == second
    assert [m.token for m in fake_github.minted] == [first, second]
    for minted in fake_github.minted:
        assert minted.repositories == frozenset({"acme/shop"})
    assert not fake_github.token_is_valid(second)


def test_the_intake_token_reads_and_answers_triggers_only(
    fake_github: FakeGitHub, app_credentials: GitHubCredentials, human: Github
) -> None:
    issue = human.get_repo("acme/shop").create_issue("Add a cart")
    intake = RepoClient(
        app_credentials,
        "acme/shop",
        fake_github.base_url,
        Pacing.none(),
        permissions=INTAKE_PERMISSIONS,
    )
    try:
        assert intake.open_issues_labelled("agentfleet") == []
        # What answering a trigger takes: a permission lookup, a reaction, a reply.
        assert intake.permission("acme") == "admin"
        intake.react(issue.number, "eyes")
        intake.upsert_comment(issue.number, "refused", "refusal", trigger=1)
        # Nothing else: no code, no branches, no pull requests.
        for attempt in (
            lambda: intake.branch_exists("main"),
            lambda: intake.repo.create_pull(title="x", body="", head="main", base="main"),
        ):
            with pytest.raises(GithubException) as refused:
                attempt()
            assert refused.value.status == 403
    finally:
        intake.close()


def test_a_token_is_never_granted_beyond_the_installation(
    fake_github: FakeGitHub, app_keys: AppKeys
) -> None:
    # An App installed on acme/shop only, without contents: it cannot mint more.
    fake_github.create_repo("acme", "other")
    fake_github.register_app(
        5, "narrow-app", app_keys.public_pem, 9, {"issues": "write"}, ["acme/shop"]
    )
    credentials = GitHubCredentials(app_id="5", private_key=SecretStr(app_keys.private_pem))
    for repository, permissions in [
        ("acme/other", stage_permissions(Stage.GENESIS)),
        ("acme/shop", stage_permissions(Stage.DEVELOPMENT)),
    ]:
        client = RepoClient(
            credentials,
            repository,
            fake_github.base_url,
            Pacing.none(),
            permissions=permissions,
        )
        try:
            with pytest.raises(GithubException) as refused:
                client.git_token()
            assert refused.value.status in {404, 422}
        finally:
            client.close()
    assert fake_github.minted == []


async def test_a_personal_access_token_still_works(fake_github: FakeGitHub, tmp_path: Path) -> None:
    env = _environment(fake_github, GitHubCredentials(token=SecretStr(BOT_TOKEN)))
    async with env.github(_item(1), stage_permissions(Stage.REVIEW)) as first:
        assert first.login == "agentfleet-bot"
        # A personal access token cannot be narrowed: even a review item's client pushes.
        await _push_a_branch(_checkout(tmp_path, "pat", first), "agentfleet/issue-1")
    async with env.github(_item(2), stage_permissions(Stage.DEVELOPMENT)) as second:
        assert second is first  # one client per project, as there is one token
        assert second.git_token() == BOT_TOKEN
    assert "agentfleet/issue-1" in fake_github.branches("acme/shop")
    assert fake_github.minted == []
    assert fake_github.token_is_valid(BOT_TOKEN)  # nothing revokes a user's token
    assert env.redactor.redact(BOT_TOKEN) == REDACTED
