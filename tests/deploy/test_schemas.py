"""deploy/compose.yaml against the Compose schema and deploy/k8s against the Kubernetes API schemas.

``docker compose`` and a cluster are not on the test machines (checked: the
Docker CLI here has no compose plugin), so the files are validated as
documents: compose against the Compose Specification's JSON schema (vendored,
see tests/deploy/data/README.md), every Kubernetes object against the API
schemas ``kubernetes-validate`` ships, in strict mode (an unknown or misspelt
field fails). Each check is first shown to catch a planted mistake.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.deploy.test_deploy import DEPLOY, K8S

DATA = Path(__file__).parent / "data"
COMPOSE_SCHEMA_SHA256 = "0dc04bd346dcfee1b1419628fff79937bbf076925f298f272a2b490e2b112bac"
# The oldest Kubernetes minor version still supported upstream when this was written, and the newest known.
KUBERNETES_VERSIONS = ("1.31.0", kubernetes_validate.utils.latest_version())
# Compose v2's rule for a project name (the specification's "name" key, newer than the vendored schema).
PROJECT_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")


def compose_errors(document: dict[str, Any]) -> list[str]:
    schema_bytes = (DATA / "compose_spec.json").read_bytes()
    assert hashlib.sha256(schema_bytes).hexdigest() == COMPOSE_SCHEMA_SHA256, "the vendored schema was changed"
    schema = json.loads(schema_bytes)
    document = dict(document)
    name = document.pop("name", None)
    errors = [] if name is None or PROJECT_NAME.fullmatch(str(name)) else [f"name {name!r} is not a project name"]
    # The file names its draft with a trailing '#' that jsonschema does not recognise: name it here.
    validator = jsonschema.Draft201909Validator(schema)
    errors += [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]
    return errors


def compose_document() -> dict[str, Any]:
    loaded = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def test_compose_file_follows_the_compose_specification() -> None:
    assert compose_errors(compose_document()) == []


def test_the_compose_check_catches_a_mistake() -> None:
    spoiled = copy.deepcopy(compose_document())
    spoiled["services"]["signpost-broker"]["read_onyl"] = True
    assert any("read_onyl" in e for e in compose_errors(spoiled))
    spoiled = copy.deepcopy(compose_document())
    spoiled["name"] = "Signpost Deploy"
    assert compose_errors(spoiled)


def k8s_objects() -> list[tuple[str, dict[str, Any]]]:
    objects = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":  # kustomize's own file, not an API object
            continue
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if document:
                objects.append((f"{path.name} {document['kind']}/{document['metadata']['name']}", document))
    return objects


def k8s_error(document: dict[str, Any], version: str) -> str | None:
    try:
        kubernetes_validate.validate(document, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return f"{'/'.join(map(str, exc.path))}: {exc.message}"
    return None


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_kubernetes_manifests_follow_the_api_schemas(version: str) -> None:
    objects = k8s_objects()
    assert {kind.split()[1].split("/")[0] for kind, _ in objects} >= {"Deployment", "Service", "ConfigMap"}
    errors = {where: k8s_error(document, version) for where, document in objects}
    assert {where: e for where, e in errors.items() if e} == {}


def test_the_kubernetes_check_catches_a_mistake() -> None:
    deployment = next(d for _, d in k8s_objects() if d["kind"] == "Deployment")
    spoiled = copy.deepcopy(deployment)
    spoiled["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    assert k8s_error(spoiled, KUBERNETES_VERSIONS[-1])
    spoiled = copy.deepcopy(deployment)
    spoiled["spec"]["replicas"] = "three"
    assert k8s_error(spoiled, KUBERNETES_VERSIONS[-1])
