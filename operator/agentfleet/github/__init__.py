"""GitHub integration through PyGithub: credentials, idempotent operations, git, intake."""

from agentfleet.github.client import (
    CommentInfo,
    FileChange,
    IssueInfo,
    Pacing,
    PullInfo,
    RepoClient,
)
from agentfleet.github.credentials import (
    CredentialsError,
    GitHubCredentials,
    credentials_from_directory,
    credentials_from_secret_data,
    repository_endpoint,
)
from agentfleet.github.git import GitCheckout, GitError
from agentfleet.github.intake import (
    BRANCH_PREFIX,
    DIAGNOSTIC_LABEL,
    DOCS_LABEL,
    DRY_RUN_LABEL,
    MASTER_LABEL,
    SUB_TASK_LABEL,
    IssueFacts,
    ProjectIntake,
    issue_item_id,
    issue_work,
    poll_project,
    pull_item_id,
    webhook_work,
    work_item,
)
from agentfleet.github.markers import find_markers, has_marker, marker, marker_field
from agentfleet.github.webhook import (
    WebhookServer,
    WebhookTarget,
    create_webhook_app,
    signature_matches,
)

__all__ = [
    "BRANCH_PREFIX",
    "DIAGNOSTIC_LABEL",
    "DOCS_LABEL",
    "DRY_RUN_LABEL",
    "MASTER_LABEL",
    "SUB_TASK_LABEL",
    "CommentInfo",
    "CredentialsError",
    "FileChange",
    "GitCheckout",
    "GitError",
    "GitHubCredentials",
    "IssueFacts",
    "IssueInfo",
    "Pacing",
    "ProjectIntake",
    "PullInfo",
    "RepoClient",
    "WebhookServer",
    "WebhookTarget",
    "create_webhook_app",
    "credentials_from_directory",
    "credentials_from_secret_data",
    "find_markers",
    "has_marker",
    "issue_item_id",
    "issue_work",
    "marker",
    "marker_field",
    "poll_project",
    "pull_item_id",
    "repository_endpoint",
    "signature_matches",
    "webhook_work",
    "work_item",
]
