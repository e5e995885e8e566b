"""Code that runs only on a developer's machine, never in a cluster, and is not shipped.

`localenv` starts the local cluster (etcd, kube-apiserver, kube-controller-manager,
kube-scheduler, a real node with kubelet and containerd), Redis and Prometheus for
`make demo`, `make cluster-up` and the tests; `testing` holds the local HTTP servers that
speak GitHub's and Anthropic's wire protocols. The wheel and the images leave this
package out (pyproject.toml, `[tool.hatch.build.targets.wheel]`), so `agentfleet dev`
exists only in a source checkout (`make venv`).
"""
