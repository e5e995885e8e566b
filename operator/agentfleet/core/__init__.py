"""The shared core: what both the operator and a worker Pod import.

`api` (the CRD models, the source of crds/), `pipeline` (work items: ids, payloads,
lanes, branches), `queue` (the Redis work queue), `github` (PyGithub, git, App tokens,
which GitHub events become items) and `redaction`. Nothing here imports
`agentfleet.operator`, `agentfleet.worker` or `agentfleet.dev` (pyproject.toml's
import contracts).
"""
