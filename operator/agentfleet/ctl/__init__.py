"""The fleet commands people run against a cluster on their own machine (`agentfleet
status`, `queues`, `bottlenecks`, `pools`, `workers`, `pause`, `resume`, `priority`,
`scale`, `restart`), with nothing but a kubeconfig (a kubectl plugin too: `kubectl
agentfleet ...` runs the same code).

`views` turns the custom resources and Pods into rows (pure); `kube` is the thin client
(kubectl's flags: --kubeconfig, --context, -n, -A); `output` prints tables for people and
JSON or YAML for scripts; `commands` wires them into typer. Nothing here imports the
operator or the worker: what the CLI knows of the fleet it reads from the API server,
and what it changes is the custom resources, so RBAC decides who may do what.
"""
