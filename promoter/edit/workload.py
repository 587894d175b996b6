"""Kubernetes workloads: ``image`` of containers, initContainers and ephemeralContainers.

Any kind qualifies (Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob,
Argo Rollout, a List, an unknown CRD): every container list in the document is read,
at whatever depth its pod template sits.
"""

from __future__ import annotations

from collections.abc import Iterator

from ruamel.yaml.nodes import MappingNode, Node, SequenceNode

from promoter.edit.document import Document, get, items, seq
from promoter.edit.slots import RefSlot, Slot

CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")


def applies(doc: Document, file: str) -> bool:
    return doc.kind is not None and doc.api_version is not None


def slots(doc: Document, file: str) -> Iterator[Slot]:
    yield from _walk(doc.root, "", set())


def _walk(node: Node, path: str, seen: set[int]) -> Iterator[Slot]:
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, MappingNode):
        for key, value in items(node):
            here = f"{path}.{key}" if path else key
            if key in CONTAINER_LISTS and isinstance(value, SequenceNode):
                for i, container in enumerate(seq(value)):
                    image = get(container, "image")
                    if image is not None:
                        yield RefSlot(image, f"{here}[{i}].image", "workload")
            elif key == "container" and get(value, "image") is not None:
                yield RefSlot(get(value, "image"), f"{here}.image", "workload")  # type: ignore[arg-type]
            else:
                yield from _walk(value, here, seen)
    elif isinstance(node, SequenceNode):
        for i, item in enumerate(node.value):
            yield from _walk(item, f"{path}[{i}]", seen)
