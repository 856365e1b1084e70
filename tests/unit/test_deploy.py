"""Deployment files, validated as far as this machine allows (no Docker engine, no cluster): schemas, settings
names, CLI arguments, image pins, probes, resources, and the router's split between ingest and query."""

from __future__ import annotations

import json
import re
import shlex
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tracehouse.cli import _parser
from tracehouse.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "deploy/docker-compose.yml").read_text())
MANIFESTS = [d for d in yaml.safe_load_all((ROOT / "deploy/kubernetes/tracehouse.yaml").read_text()) if d]
SETTINGS = {f"TRACEHOUSE_{name.upper()}" for name in Settings.model_fields}


def containers(kinds: tuple[str, ...] = ("Deployment", "StatefulSet", "Job")) -> list[dict[str, Any]]:
    out = []
    for doc in (d for d in MANIFESTS if d["kind"] in kinds):
        spec = doc.get("spec", {})
        pod = spec.get("template", {}).get("spec", {}) if "template" in spec else {}
        out.extend(pod.get("containers", []))
    return out


def test_compose_matches_the_compose_spec() -> None:
    schema_file = resources.files("check_jsonschema") / "builtin_schemas/vendor/compose-spec.json"
    jsonschema.validate(COMPOSE, json.loads(schema_file.read_text()))


@pytest.mark.parametrize("doc", MANIFESTS, ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_manifests_match_the_kubernetes_schema(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, "1.30", strict=True)


def test_images_are_pinned() -> None:
    images = [s["image"] for s in COMPOSE["services"].values() if "image" in s] + [c["image"] for c in containers()]
    for image in images:
        name, _, tag = image.rpartition(":")
        assert name and tag and tag != "latest", f"{image} is not pinned"


def test_environment_names_are_real_settings() -> None:
    names = set()
    for service in COMPOSE["services"].values():
        env = service.get("environment") or {}
        names |= {k for k in (env if isinstance(env, dict) else [e.split("=")[0] for e in env])}
    for doc in MANIFESTS:
        if doc["kind"] in ("Secret", "ConfigMap"):
            names |= set(doc.get("stringData", doc.get("data", {})))
    unknown = {n for n in names if n.startswith("TRACEHOUSE_")} - SETTINGS
    assert not unknown, f"not settings: {unknown}"


def test_commands_parse_with_the_cli() -> None:
    commands = [s["command"] for s in COMPOSE["services"].values() if s.get("image", "").startswith("tracehouse")]
    commands += [c["args"] for c in containers() if "tracehouse" in c["image"]]
    commands += [d["spec"]["template"]["spec"]["containers"][0]["args"] for d in MANIFESTS if d["kind"] == "Job"]
    assert len(commands) >= 5
    for args in commands:
        parsed = _parser().parse_args(args)
        assert parsed.command in ("serve", "migrate")
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["tracehouse"]' in dockerfile and "USER tracehouse" in dockerfile
    cmd = json.loads(re.search(r"^CMD (.+)$", dockerfile, re.M).group(1))  # type: ignore[union-attr]
    assert _parser().parse_args(cmd).command == "serve"


def test_pods_have_probes_resources_and_a_spool_volume() -> None:
    for container in containers():
        assert container["resources"]["requests"], container["name"]
    for container in containers(("Deployment", "StatefulSet")):
        assert "readinessProbe" in container and "livenessProbe" in container, container["name"]
        probe_paths = {container[p].get("httpGet", {}).get("path") for p in ("readinessProbe", "livenessProbe")}
        assert probe_paths <= {"/ok", "/health", None}
    ingest = next(d for d in MANIFESTS if d["kind"] == "StatefulSet")
    mount = ingest["spec"]["template"]["spec"]["containers"][0]["volumeMounts"][0]
    assert mount["name"] == ingest["spec"]["volumeClaimTemplates"][0]["metadata"]["name"]
    targets = {(d["kind"], d["metadata"]["name"]) for d in MANIFESTS}
    for hpa in (d for d in MANIFESTS if d["kind"] == "HorizontalPodAutoscaler"):
        ref = hpa["spec"]["scaleTargetRef"]
        assert (ref["kind"], ref["name"]) in targets


def _router_map(conf: str) -> list[tuple[re.Pattern[str], str]]:
    block = re.search(r'map "\$request_method:\$uri" \$backend \{(.*?)\}', conf, re.S).group(1)  # type: ignore[union-attr]
    rules = []
    for line in block.strip().splitlines():
        pattern, backend = shlex.split(line.strip().rstrip(";"))
        rules.append((re.compile(".*" if pattern == "default" else pattern.removeprefix("~")), backend))
    return rules


ROUTES = [
    ("POST", "/runs/multipart", "ingest"),
    ("POST", "/api/v1/runs/batch", "ingest"),
    ("POST", "/runs", "ingest"),
    ("PATCH", "/runs/0b0e7b8e-6c1a-4c37-9d1b-6a5a3f1d2e4f", "ingest"),
    ("POST", "/otel/v1/traces", "ingest"),
    ("POST", "/api/v1/otel/v1/traces", "ingest"),
    ("POST", "/runs/query", "query"),
    ("POST", "/runs/stats", "query"),
    ("GET", "/runs/0b0e7b8e-6c1a-4c37-9d1b-6a5a3f1d2e4f", "query"),
    ("POST", "/feedback", "query"),
    ("GET", "/sessions", "query"),
    ("GET", "/info", "query"),
    ("PUT", "/runs/x/share", "query"),
]


@pytest.mark.parametrize(
    "conf",
    [
        (ROOT / "deploy/nginx.conf").read_text(),
        next(d for d in MANIFESTS if d["metadata"]["name"] == "router")["data"]["nginx.conf"],
    ],
)
def test_router_sends_writes_to_ingest_and_the_rest_to_query(conf: str) -> None:
    rules = _router_map(conf)
    for method, path, expected in ROUTES:
        backend = next(b for pattern, b in rules if pattern.search(f"{method}:{path}"))
        assert backend == expected, f"{method} {path} -> {backend}"
