"""The operator: kopf handlers (`operator`), pure decisions (`logic`), pure manifest
builders (`children`) and the thin Kubernetes adapter (`kube`)."""
