"""GitHub integration through PyGithub: credentials, idempotent operations, git, intake."""

from agentfleet.core.github.client import (
    CommentInfo,
    FileChange,
    IssueInfo,
    PullInfo,
    RepoClient,
)
from agentfleet.core.github.credentials import (
    CredentialsError,
    GitHubCredentials,
    credentials_from_directory,
    credentials_from_secret_data,
    repository_endpoint,
)
from agentfleet.core.github.events import (
    DIAGNOSTIC_LABEL,
    DOCS_LABEL,
    DRY_RUN_LABEL,
    MASTER_LABEL,
    SUB_TASK_LABEL,
    IssueFacts,
    ProjectIntake,
    issue_work,
    poll_project,
    webhook_work,
)
from agentfleet.core.github.git import AGENT_CONFIG_PATHS, GitCheckout, GitError
from agentfleet.core.github.markers import find_markers, has_marker, marker, marker_field
from agentfleet.core.github.pacing import Pacing
from agentfleet.core.github.permissions import (
    INTAKE_PERMISSIONS,
    READ_ONLY,
    SCAFFOLD_PERMISSIONS,
    STAGE_PERMISSIONS,
    Permissions,
    stage_permissions,
)
from agentfleet.core.github.tokens import GitHubApp, InstallationToken, TokenError
from agentfleet.core.github.triggers import (
    Trigger,
    TriggerKind,
    decide,
    read_trigger,
)
from agentfleet.core.github.webhook import (
    TriggerUnanswerable,
    WebhookServer,
    WebhookTarget,
    create_webhook_app,
    signature_matches,
)

__all__ = [
    "AGENT_CONFIG_PATHS",
    "DIAGNOSTIC_LABEL",
    "DOCS_LABEL",
    "DRY_RUN_LABEL",
    "INTAKE_PERMISSIONS",
    "MASTER_LABEL",
    "READ_ONLY",
    "SCAFFOLD_PERMISSIONS",
    "STAGE_PERMISSIONS",
    "SUB_TASK_LABEL",
    "CommentInfo",
    "CredentialsError",
    "FileChange",
    "GitCheckout",
    "GitError",
    "GitHubApp",
    "GitHubCredentials",
    "InstallationToken",
    "IssueFacts",
    "IssueInfo",
    "Pacing",
    "Permissions",
    "ProjectIntake",
    "PullInfo",
    "RepoClient",
    "TokenError",
    "Trigger",
    "TriggerKind",
    "TriggerUnanswerable",
    "WebhookServer",
    "WebhookTarget",
    "create_webhook_app",
    "credentials_from_directory",
    "credentials_from_secret_data",
    "decide",
    "find_markers",
    "has_marker",
    "issue_work",
    "marker",
    "marker_field",
    "poll_project",
    "read_trigger",
    "repository_endpoint",
    "signature_matches",
    "stage_permissions",
    "webhook_work",
]
