#!/usr/bin/env python3
"""Offline checks of deploy/k8s (run with the venv of scripts/ops-tools.sh; tests/ops.rs does).

  check-k8s.py K8S_DIR CONFIG_OUT

1. Every manifest validates, strictly (no unknown field), against the Kubernetes JSON schemas
   that PyPI kubernetes-validate bundles. A kind it has no schema for fails, except the two
   custom resources: ServiceMonitor (Prometheus Operator) and Kustomization, checked here by
   structure instead (what they select must exist).
2. What the deploy pack promises of the Deployment: probes on /healthz and /readyz, resources,
   non-root, read-only root filesystem, API keys and the SASL password from Secret references
   only, the ConfigMap mounted where --config points.
3. The ConfigMap's threatsift.toml is written to CONFIG_OUT, and the Deployment's
   terminationGracePeriodSeconds printed, for the caller to load the config with the real binary
   and compare its drain_timeout.
Exits 1 naming every problem found.
"""
import pathlib
import sys

import kubernetes_validate
import yaml

CUSTOM = {("monitoring.coreos.com/v1", "ServiceMonitor"), ("kustomize.config.k8s.io/v1beta1", "Kustomization")}


def main(directory, config_out):
    problems = []
    docs = {}
    files = sorted(pathlib.Path(directory).glob("*.yaml"))
    if not files:
        problems.append(f"no manifests in {directory}")
    for path in files:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is None:
                continue
            key = (doc.get("apiVersion"), doc.get("kind"))
            docs.setdefault(doc.get("kind"), []).append((path.name, doc))
            if key in CUSTOM:
                continue
            try:
                kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)
            except kubernetes_validate.ValidationError as e:
                problems.append(f"{path.name}: {e.message} at {'.'.join(map(str, e.path))}")
            except kubernetes_validate.SchemaNotFoundError as e:
                problems.append(f"{path.name}: no schema for {key}: {e}")

    def one(kind):
        found = docs.get(kind, [])
        if len(found) != 1:
            problems.append(f"expected one {kind}, found {len(found)}")
            return {}
        return found[0][1]

    deployment, service, monitor, configmap = (one(k) for k in ("Deployment", "Service", "ServiceMonitor", "ConfigMap"))
    one("PodDisruptionBudget")
    kustomization = one("Kustomization")
    listed = set(kustomization.get("resources", []))
    for name in {p.name for p in files} - {"kustomization.yaml", "secret.example.yaml"} - listed:
        problems.append(f"kustomization.yaml does not list {name}")

    pod = deployment.get("spec", {}).get("template", {}).get("spec", {})
    containers = pod.get("containers", [{}])
    container = containers[0]
    probes = {name: container.get(name, {}).get("httpGet", {}).get("path") for name in ("livenessProbe", "readinessProbe")}
    if probes != {"livenessProbe": "/healthz", "readinessProbe": "/readyz"}:
        problems.append(f"probes: {probes}")
    resources = container.get("resources", {})
    if not resources.get("requests") or not resources.get("limits", {}).get("memory"):
        problems.append("resources: requests and a memory limit are needed")
    if not pod.get("securityContext", {}).get("runAsNonRoot"):
        problems.append("pod securityContext.runAsNonRoot is not true")
    if not container.get("securityContext", {}).get("readOnlyRootFilesystem"):
        problems.append("container securityContext.readOnlyRootFilesystem is not true")
    for env in container.get("env", []):
        name = env.get("name", "")
        if ("PASSWORD" in name or "API_KEY" in name) and "secretKeyRef" not in env.get("valueFrom", {}):
            problems.append(f"{name} must come from a secretKeyRef")
    if "THREATSIFT__KAFKA__SASL_PASSWORD" not in {e.get("name") for e in container.get("env", [])}:
        problems.append("no Secret reference for the SASL password")
    args = container.get("args", [])
    config_path = args[args.index("--config") + 1] if "--config" in args else ""
    mounts = {m.get("name"): m.get("mountPath") for m in container.get("volumeMounts", [])}
    volumes = {v.get("name"): v for v in pod.get("volumes", [])}
    config_volume = next((n for n, v in volumes.items() if v.get("configMap", {}).get("name") == configmap.get("metadata", {}).get("name")), None)
    config_key = pathlib.PurePosixPath(config_path).name
    if config_volume is None or mounts.get(config_volume) != str(pathlib.PurePosixPath(config_path).parent):
        problems.append(f"--config {config_path!r} is not in the mounted ConfigMap")
    if config_key not in configmap.get("data", {}):
        problems.append(f"the ConfigMap has no key {config_key!r}")

    labels = pod and deployment["spec"]["template"]["metadata"].get("labels", {})
    selector = service.get("spec", {}).get("selector", {})
    if not selector or any(labels.get(k) != v for k, v in selector.items()):
        problems.append(f"the Service selector {selector} does not match the pod labels {labels}")
    port_names = {p.get("name") for p in service.get("spec", {}).get("ports", [])}
    monitor_spec = monitor.get("spec", {})
    match = monitor_spec.get("selector", {}).get("matchLabels", {})
    if not match or any(service.get("metadata", {}).get("labels", {}).get(k) != v for k, v in match.items()):
        problems.append(f"the ServiceMonitor selector {match} does not match the Service's labels")
    for endpoint in monitor_spec.get("endpoints", []) or [{}]:
        if endpoint.get("port") not in port_names or endpoint.get("path", "/metrics") != "/metrics":
            problems.append(f"ServiceMonitor endpoint {endpoint} is not the Service's metrics port")

    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    pathlib.Path(config_out).write_text(configmap["data"][config_key])
    print(f"terminationGracePeriodSeconds={pod.get('terminationGracePeriodSeconds', 30)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
