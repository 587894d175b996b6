"""Flux HelmRelease (``helm.toolkit.fluxcd.io``, any version): inline Helm values.

``spec.values`` is a values file written inline: every shape the Helm values walker
knows applies there, as in Argo CD's ``helm.valuesObject``.
``spec.postRenderers[*].kustomize.images`` are kustomize image entries.
``spec.valuesFrom`` names a ConfigMap or Secret: not inline, so not read here.
"""

from __future__ import annotations

from collections.abc import Iterator

from promoter.edit import helm, kustomize
from promoter.edit.document import Document, get, seq
from promoter.edit.slots import Slot

GROUP = "helm.toolkit.fluxcd.io/"


def applies(doc: Document, file: str) -> bool:
    return doc.kind == "HelmRelease" and (doc.api_version or "").startswith(GROUP)


def slots(doc: Document, file: str) -> Iterator[Slot]:
    spec = get(doc.root, "spec")
    values = get(spec, "values")
    if values is not None:
        yield from helm.walk(values, "spec.values", "flux")
    for i, renderer in enumerate(seq(get(spec, "postRenderers"))):
        images = get(get(renderer, "kustomize"), "images")
        yield from kustomize.entries(images, f"spec.postRenderers[{i}].kustomize.images",
                                     "kustomize")
