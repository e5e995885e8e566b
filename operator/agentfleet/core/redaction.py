"""Secrets never reach the model or the logs.

A `Redactor` knows the literal secret values of this worker (API keys, GitHub tokens,
the App private key, webhook secrets, and any environment variable whose name says it is
a secret) plus the shapes of well-known credentials, and replaces them with `[REDACTED]`
in everything sent to the model (prompts, issue text, tool output) and everything logged.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any
from urllib.parse import urlsplit

REDACTED = "[REDACTED]"

_CREDENTIAL_SHAPES = re.compile(
    "|".join(
        [
            r"\bgh[pousr]_[A-Za-z0-9]{20,}",
            r"\bgithub_pat_[A-Za-z0-9_]{20,}",
            r"\bsk-ant-[A-Za-z0-9_-]{10,}",
            r"\bAKIA[0-9A-Z]{16}\b",
            r"\bxox[abprs]-[A-Za-z0-9-]{10,}",
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----",
        ]
    )
)
_SECRET_NAME = re.compile(r"(TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|PRIVATE_KEY|CREDENTIAL)", re.I)
_MIN_SECRET_LENGTH = 8
"""Shorter values would redact ordinary words; real credentials are much longer."""


def display_url(url: str) -> str:
    """A URL fit for a log line: scheme, host, port and path, never the user or password
    (a Redis URL carries the queue's password)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


class Redactor:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        for secret in secrets:
            self.add(secret)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str], extra: Iterable[str] = ()) -> Redactor:
        """Every environment value whose variable name looks like a secret, plus `extra`."""
        found = [value for name, value in environ.items() if _SECRET_NAME.search(name)]
        return cls([*found, *extra])

    def add(self, secret: str) -> None:
        secret = secret.strip()
        if len(secret) >= _MIN_SECRET_LENGTH:
            self._secrets.add(secret)
            # A PEM key also appears line by line in wrapped output.
            for line in secret.splitlines():
                if len(line.strip()) >= 32:
                    self._secrets.add(line.strip())

    def discard(self, secret: str) -> None:
        """Forget a secret that no longer works (a revoked or expired token), so that a
        long-running worker's list of secrets does not grow with every item."""
        self._secrets.discard(secret.strip())

    def redact(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, REDACTED)
        return _CREDENTIAL_SHAPES.sub(REDACTED, text)

    def redact_data(self, value: Any) -> Any:
        """`redact` applied to every string inside nested dicts and lists."""
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, dict):
            return {key: self.redact_data(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self.redact_data(item) for item in value]
        return value


class RedactingLogger(logging.LoggerAdapter[logging.Logger]):
    """A logger adapter whose messages (arguments included) pass through a Redactor."""

    def __init__(
        self,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger],
        redactor: Redactor,
    ) -> None:
        base = logger.logger if isinstance(logger, logging.LoggerAdapter) else logger
        extra = dict(logger.extra or {}) if isinstance(logger, logging.LoggerAdapter) else {}
        super().__init__(base, extra)
        self.redactor = redactor

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        kwargs.setdefault("extra", {}).update(self.extra or {})
        return self.redactor.redact(str(msg)), kwargs

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        if args:
            msg = str(msg) % args
        super().log(level, msg, **kwargs)
