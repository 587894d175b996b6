"""One big multi-document manifest: an ``install.yaml`` of about 1.9 MB with 80 documents
(CustomResourceDefinitions with long schemas, RBAC, ConfigMaps, Deployments) and 30 uses
of the promoted image, as operators ship them. Measures promoter's edit of it against
composing it with ruamel's C parser alone (the floor: promoter must at least read the
documents that name the image).

    python bench/run.py big [--quick]

CPU time (``time.process_time``) of this process, median of ``runs``.

Deterministic: the same bytes every time (no randomness).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

IMAGE = "ghcr.io/acme/operator"
OLD, NEW = "2.3.0", "2.4.0"
DOCUMENTS = 80
USES = 30


def _schema(i: int, fields: int) -> str:
    lines = []
    for f in range(fields):
        lines += [
            f"                  field{f}:",
            f"                    description: Field {f} of resource {i}; a controller "
            "documents every field of its custom resources at length, which is why "
            "install files grow to megabytes.",
            "                    type: object",
            "                    properties:",
            "                      enabled: {type: boolean, default: false}",
            "                      mode: {type: string, enum: [fast, safe, audit]}",
            "                      replicas: {type: integer, minimum: 0, maximum: 100}",
        ]
    return "\n".join(lines)


def crd(i: int) -> str:
    return f"""apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets{i}.acme.io
  labels: {{app.kubernetes.io/part-of: acme-operator}}
spec:
  group: acme.io
  names: {{kind: Widget{i}, plural: widgets{i}, singular: widget{i}}}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              settings:
                type: object
                properties:
{_schema(i, 78)}
"""


def deployment(i: int, uses: int) -> str:
    containers = "\n".join(
        f"""      - name: worker-{c}
        image: {IMAGE}:{OLD}
        args: ["--shard={c}", "--metrics-port=90{c:02d}"]
        resources: {{limits: {{cpu: 500m, memory: 256Mi}}}}"""
        for c in range(uses))
    return f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: acme-operator-{i}
  namespace: acme-system
spec:
  replicas: 1
  selector: {{matchLabels: {{app: acme-operator-{i}}}}}
  template:
    metadata: {{labels: {{app: acme-operator-{i}}}}}
    spec:
      serviceAccountName: acme-operator
      containers:
{containers}
"""


def rbac(i: int) -> str:
    rules = "\n".join(f"""- apiGroups: [acme.io]
  resources: [widgets{j}, widgets{j}/status]
  verbs: [get, list, watch, update, patch]""" for j in range(20))
    return f"""apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: acme-operator-{i}
rules:
{rules}
"""


def configmap(i: int) -> str:
    data = "\n".join(f"    key{k} = value {k} of map {i}" for k in range(120))
    return f"""apiVersion: v1
kind: ConfigMap
metadata:
  name: acme-config-{i}
data:
  settings.toml: |
{data}
"""


def build() -> bytes:
    """The manifest: 80 documents, the image 30 times (in 12 Deployments)."""
    docs: list[str] = []
    uses = [3] * 6 + [2] * 6  # 30 containers in 12 Deployments
    kinds = ["crd"] * 48 + ["rbac"] * 10 + ["cm"] * 10 + ["deploy"] * 12
    d = 0
    for i, kind in enumerate(kinds):
        if kind == "crd":
            docs.append(crd(i))
        elif kind == "rbac":
            docs.append(rbac(i))
        elif kind == "cm":
            docs.append(configmap(i))
        else:
            docs.append(deployment(i, uses[d]))
            d += 1
    # spread the Deployments through the file, as bundles interleave kinds
    order = sorted(range(len(docs)), key=lambda k: (k * 37) % len(docs))
    return ("---\n".join(docs[k] for k in order)).encode()


def _median(fn: Callable[[], Any], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return statistics.median(times)


def run(*, runs: int = 5, results: Path | None = None) -> dict[str, Any]:
    from ruamel.yaml import YAML

    from promoter.edit import Targets
    from promoter.edit.engine import edit_file
    from promoter.images import parse

    data = build()
    text = data.decode()
    composer = YAML(typ="safe", pure=False)
    targets = Targets((parse(f"{IMAGE}:{NEW}"),))
    result = edit_file("install.yaml", data, targets)
    assert result.new is not None
    assert result.new.count(f"{IMAGE}:{NEW}".encode()) == USES
    compose = _median(lambda: list(composer.compose_all(text)), runs)
    edit = _median(lambda: edit_file("install.yaml", data, targets), runs)
    out: dict[str, Any] = {
        "bytes": len(data), "documents": data.count(b"\n---\n") + 1, "uses": USES,
        "compose_c_s": compose, "promoter_edit_s": edit, "ratio": edit / compose,
        "runs": runs, "target_ratio": 2.0}
    out["tables"] = table(out)
    if results is not None:
        from bench import common

        common.write_result("big", out, results)
    return out


def table(data: dict[str, Any]) -> str:
    return ("| file | documents | uses | compose (C parser) CPU s | promoter edit CPU s | "
            "ratio |\n|---|---|---|---|---|---|\n"
            f"| {data['bytes'] / 1e6:.2f} MB | {data['documents']} | {data['uses']} | "
            f"{data['compose_c_s']:.3f} | {data['promoter_edit_s']:.3f} | "
            f"{data['ratio']:.1f}x |\n")


if __name__ == "__main__":
    print(table(run()))
