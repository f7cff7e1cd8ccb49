#!/usr/bin/env python3
"""Checks deploy/compose.yaml as far as this machine allows (tests/ops.rs runs it with the venv
of scripts/ops-tools.sh). There is no Docker engine in the test environment, so nothing is
started; `docker compose config` runs only where the compose plugin exists.

  check-compose.py COMPOSE_FILE

Checks: the four services (daemon, Kafka-compatible broker, Prometheus, Grafana) and the topic
creation; every bind-mounted file and the build context exist; the daemon's --config is a
mounted file; Prometheus gets the rules and a scrape of the daemon's service; Grafana gets the
dashboard and a datasource. Prints the host path of the daemon's config (for the caller to load
it with the real binary). Exits 1 naming every problem.
"""
import pathlib
import shutil
import subprocess
import sys

import yaml


def main(compose_file):
    path = pathlib.Path(compose_file)
    base = path.parent
    doc = yaml.safe_load(path.read_text())
    problems = []
    services = doc.get("services", {})
    for name in ("kafka", "topics", "threatsift", "prometheus", "grafana"):
        if name not in services:
            problems.append(f"no service {name!r}")
    mounts = {}
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            if source.startswith("."):
                if not (base / source).exists():
                    problems.append(f"{name}: {source} does not exist")
                mounts.setdefault(name, {})[target] = base / source
    daemon = services.get("threatsift", {})
    build = daemon.get("build", {})
    if not (base / build.get("context", "?") / build.get("dockerfile", "?")).is_file():
        problems.append(f"threatsift: build {build} has no Dockerfile")
    command = daemon.get("command", [])
    config = command[command.index("--config") + 1] if "--config" in command else None
    config_host = mounts.get("threatsift", {}).get(config)
    if config_host is None:
        problems.append(f"threatsift: --config {config!r} is not a mounted file")
    if "stop_grace_period" not in daemon:
        problems.append("threatsift: no stop_grace_period")
    topics = " ".join(services.get("topics", {}).get("command", []))
    for topic in ("firewall", "proxy", "threats", "threatsift-dlq"):
        if topic not in topics:
            problems.append(f"topics: {topic} is not created")
    prometheus = mounts.get("prometheus", {})
    prometheus_config = prometheus.get("/etc/prometheus/prometheus.yml")
    if prometheus_config is None or "/etc/prometheus/alerts.yml" not in prometheus:
        problems.append("prometheus: prometheus.yml and alerts.yml must be mounted in /etc/prometheus")
    else:
        scrape = yaml.safe_load(prometheus_config.read_text())
        targets = [t for job in scrape.get("scrape_configs", []) for sc in job.get("static_configs", []) for t in sc.get("targets", [])]
        if "threatsift:9464" not in targets:
            problems.append(f"prometheus: scrapes {targets}, not threatsift:9464")
    grafana = mounts.get("grafana", {})
    if not any(p.name == "threatsift.json" for p in grafana.values()):
        problems.append("grafana: the dashboard is not mounted")
    if "/etc/grafana/provisioning/datasources" not in grafana or "/etc/grafana/provisioning/dashboards" not in grafana:
        problems.append("grafana: datasource and dashboard provisioning are not mounted")
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        result = subprocess.run([docker, "compose", "-f", str(path), "config", "-q"], capture_output=True, text=True)
        if result.returncode != 0:
            problems.append(f"docker compose config: {result.stderr.strip()}")
        print("docker compose config: ran", file=sys.stderr)
    else:
        print("docker compose config: skipped (no compose plugin here)", file=sys.stderr)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    print(config_host.resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
