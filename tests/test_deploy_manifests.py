"""deploy/kubernetes/*.yaml: valid Kubernetes objects (checked offline against the schemas
kubernetes-validate ships), and a ConfigMap whose plano.yaml `plano validate` accepts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from proxy.config import Mode, check_text

kubernetes_validate = pytest.importorskip("kubernetes_validate")

MANIFESTS = Path(__file__).resolve().parent.parent / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.30"


def documents() -> list[dict]:
    docs = []
    for path in sorted(MANIFESTS.glob("*.yaml")):
        docs += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return docs


def by_kind(kind: str) -> dict:
    (doc,) = [doc for doc in documents() if doc["kind"] == kind]
    return doc


def test_the_manifests_are_the_five_objects_a_deployment_needs():
    kinds = sorted(doc["kind"] for doc in documents())
    expected = ["ConfigMap", "Deployment", "HorizontalPodAutoscaler", "Secret", "Service"]
    assert kinds == expected


@pytest.mark.parametrize("doc", documents(), ids=lambda doc: doc["kind"])
def test_each_manifest_is_valid_against_the_kubernetes_schema(doc, monkeypatch):
    # No network: the schemas are files of the package. A socket would fail the test.
    import socket

    def no_network(*args, **kwargs):
        raise AssertionError("kubernetes-validate tried the network")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    version = kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    assert version == KUBERNETES_VERSION


def test_an_invalid_manifest_is_caught():
    """The check has teeth: a misspelt field fails under strict validation."""
    doc = by_kind("Deployment")
    doc["spec"]["replica"] = doc["spec"].pop("replicas")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_configmap_holds_a_config_plano_validate_accepts():
    config_text = by_kind("ConfigMap")["data"]["plano.yaml"]
    env = by_kind("Secret")["stringData"]  # the placeholders as a user would first apply them
    result = check_text(config_text, file="plano.yaml", env=env, mode=Mode.VALIDATE)
    assert result.ok, [p.message for p in result.errors]
    listener = result.config.listeners[0]
    assert (listener.address, listener.port) == ("0.0.0.0", 12000)
    assert (result.config.admin.address, result.config.admin.port) == ("0.0.0.0", 9901)
    assert [key.id for key in listener.auth.keys] == ["team-blue", "team-green"]
    assert result.config.shared_state is not None
    assert [limit.model for limit in result.config.ratelimits] == ["openai/gpt-4o"]


def test_every_variable_of_the_config_comes_from_the_secret():
    config_text = by_kind("ConfigMap")["data"]["plano.yaml"]
    wanted = set(re.findall(r"\$\{?([A-Z_][A-Z0-9_]*)", config_text))
    container = by_kind("Deployment")["spec"]["template"]["spec"]["containers"][0]
    from_secret = {
        env["name"]
        for env in container["env"]
        if env.get("valueFrom", {}).get("secretKeyRef", {}).get("name") == "plano-secrets"
    }
    assert wanted
    assert wanted <= from_secret
    assert from_secret <= set(by_kind("Secret")["stringData"])


def test_the_deployment_probes_healthz_and_outlives_its_drain():
    pod = by_kind("Deployment")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"llm": 12000, "admin": 9901}
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["path"] == "/healthz"
        assert container[probe]["httpGet"]["port"] in ports
    args = container["args"]
    assert args[:2] == ["up", "/etc/plano/plano.yaml"]
    assert "--workers" in args
    shutdown = float(args[args.index("--shutdown-timeout") + 1])
    assert pod["terminationGracePeriodSeconds"] > shutdown
    service_ports = {port["targetPort"] for port in by_kind("Service")["spec"]["ports"]}
    assert service_ports == set(ports)
    hpa = by_kind("HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"]["name"] == by_kind("Deployment")["metadata"]["name"]
