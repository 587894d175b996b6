"""Generate a synthetic GitOps config repo for the benchmarks.

    python bench/gen_repo.py --files 10000 --seed 1 bench/out/repo-10000

The tree looks like a real platform team's config repo: one directory per service with
Kustomize bases and dev/staging/prod overlays (Deployments, StatefulSets, CronJobs,
Services, ConfigMaps, HPAs), Helm-deployed services with large commented values files
(thousands of lines, Bitnami style), Argo CD Applications per environment, and some
cluster-wide manifests. It is deterministic: the same ``--files`` and ``--seed`` give
the same bytes.

The benchmark target is ``ghcr.io/acme/api``. It is referenced in exactly
``TARGET_FILES`` files at every size, one of them (``TARGET_ONE_FILE``) alone; its
neighbours share its name's prefix or its last path component, so a byte pre-filter
is really tested: ``ghcr.io/acme/api2``, ``ghcr.io/acme/api-worker``,
``acme/api-gateway`` (Docker Hub), ``ghcr.io/acme/api-docs``, a registry mirror
``registry.acme.internal:5000/acme/api``, ``ghcr.io/partner/api``, and service URLs
such as ``http://api:8080`` in many services' config.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

GENERATOR_VERSION = 3
STAMP = ".gen.json"  # beside the tree (OUT.gen.json), never inside it

TARGET = "ghcr.io/acme/api"
TARGET_OLD = {"dev": "1.4.2", "staging": "1.4.1", "prod": "1.4.0"}
TARGET_FILES = 10
TARGET_ONE_FILE = "apps/api/overlays/dev/kustomization.yaml"
ENVS = ("dev", "staging", "prod")

WORDS = (
    "billing", "checkout", "ledger", "search", "catalog", "orders", "payments", "identity",
    "notify", "reports", "inventory", "pricing", "shipping", "returns", "loyalty", "fraud",
    "gateway", "profile", "session", "media", "thumbs", "events", "audit", "export",
    "import", "sync", "feeds", "quotes", "tax", "invoice", "mailer", "sms", "push",
    "cart", "wishlist", "reviews", "ratings", "recommend", "ads", "tracking", "geo",
    "maps", "routing", "fleet", "drivers", "slots", "booking", "calendar", "chat",
)
SUFFIXES = ("svc", "worker", "sync", "api-adapter", "consumer", "cron", "web", "admin",
            "bridge", "indexer", "cache", "proxy", "reader", "writer", "scheduler")
SIDECARS = (
    "docker.io/envoyproxy/envoy:v1.31.2",
    "otel/opentelemetry-collector-contrib:0.108.0",
    "ghcr.io/acme/log-shipper:2.3.1",
    "quay.io/prometheus/statsd-exporter:v0.27.1",
)
NEIGHBOURS = (  # (service dir, image, tag): prefix-sharing images, each a full service
    ("api2", "ghcr.io/acme/api2", "2.0.7"),
    ("api-worker", "ghcr.io/acme/api-worker", "1.4.2"),
    ("api-gateway", "acme/api-gateway", "3.2.0"),
    ("api-docs", "ghcr.io/acme/api-docs", "0.9.3"),
    ("partner-api", "ghcr.io/partner/api", "5.1.0"),
    ("api-mirror", "registry.acme.internal:5000/acme/api", "1.3.9"),
)

MIN_FILES = 60  # the target's own files, and room to finish one more service
NEIGHBOURS_FROM = 200  # trees this large also hold the prefix-sharing neighbours

HEADER = "# Managed by the platform team. Promotions are made by CI (promoter);\n" \
         "# edit by hand only what CI does not own.\n"


@dataclass
class Tree:
    """Files to write, and the count of manifests so far."""

    files: dict[str, str] = field(default_factory=dict)

    def add(self, path: str, text: str) -> None:
        if path in self.files:
            raise ValueError(f"generated twice: {path}")
        self.files[path] = text

    def __len__(self) -> int:
        return len(self.files)


# --- building blocks ------------------------------------------------------------------------


def _resources(rng: random.Random, indent: str) -> str:
    cpu = rng.choice(("50m", "100m", "250m", "500m", "1"))
    mem = rng.choice(("64Mi", "128Mi", "256Mi", "512Mi", "1Gi"))
    return (f"{indent}resources:\n{indent}  requests:\n{indent}    cpu: {cpu}\n"
            f"{indent}    memory: {mem}\n{indent}  limits:\n{indent}    memory: {mem}\n")


def _env_vars(rng: random.Random, svc: str, indent: str) -> str:
    out = [f"{indent}env:\n"]
    out.append(f"{indent}  - name: SERVICE_NAME\n{indent}    value: {svc}\n")
    out.append(f"{indent}  - name: LOG_LEVEL\n{indent}    value: "
               f"{rng.choice(('info', 'debug', 'warn'))}\n")
    if rng.random() < 0.3:
        out.append(f"{indent}  - name: API_URL\n{indent}    value: http://api:8080\n")
    out.append(f"{indent}  - name: DB_PASSWORD\n{indent}    valueFrom:\n"
               f"{indent}      secretKeyRef: {{name: {svc}-db, key: password}}\n")
    for i in range(rng.randint(0, 4)):
        out.append(f"{indent}  - name: FEATURE_{i}\n{indent}    value: \"{rng.random() < 0.5}\"\n")
    return "".join(out)


def _probe(kind: str, port: int, indent: str) -> str:
    return (f"{indent}{kind}:\n{indent}  httpGet:\n{indent}    path: /healthz\n"
            f"{indent}    port: {port}\n{indent}  periodSeconds: 10\n")


def _container(rng: random.Random, name: str, image: str, indent: str, port: int) -> str:
    quote = rng.choice(("", "", '"', "'"))
    return (f"{indent}- name: {name}\n{indent}  image: {quote}{image}{quote}\n"
            f"{indent}  imagePullPolicy: IfNotPresent\n"
            f"{indent}  ports:\n{indent}    - name: http\n{indent}      containerPort: {port}\n"
            + _env_vars(rng, name, indent + "  ")
            + _probe("readinessProbe", port, indent + "  ")
            + _probe("livenessProbe", port, indent + "  ")
            + _resources(rng, indent + "  "))


def workload(rng: random.Random, svc: str, image: str, kind: str) -> str:
    """A Deployment or StatefulSet with a main container, maybe an init and a sidecar."""
    port = rng.choice((8080, 8000, 3000, 9090))
    labels = f"app.kubernetes.io/name: {svc}\n"
    spec = "  replicas: 2\n"
    if kind == "StatefulSet":
        spec += f"  serviceName: {svc}\n"
    spec += f"  selector:\n    matchLabels:\n      {labels}"
    pod = "      containers:\n" + _container(rng, svc, image, "        ", port)
    if rng.random() < 0.4:
        pod += _container(rng, "proxy", rng.choice(SIDECARS), "        ", 15001)
    init = ""
    if rng.random() < 0.25:
        init = ("      initContainers:\n        - name: wait-for-db\n"
                "          image: docker.io/library/busybox:1.36\n"
                "          command: [sh, -c, 'until nc -z db 5432; do sleep 1; done']\n")
    volumes = ""
    if kind == "StatefulSet":
        volumes = ("  volumeClaimTemplates:\n    - metadata:\n        name: data\n"
                   "      spec:\n        accessModes: [ReadWriteOnce]\n"
                   f"        resources:\n          requests:\n            storage: "
                   f"{rng.choice(('1Gi', '10Gi', '50Gi'))}\n")
    return (HEADER + f"apiVersion: apps/v1\nkind: {kind}\nmetadata:\n  name: {svc}\n"
            f"  labels:\n    {labels}  annotations:\n"
            f"    reloader.stakater.com/auto: \"true\"\nspec:\n{spec}"
            f"  template:\n    metadata:\n      labels:\n        {labels}"
            f"    spec:\n      serviceAccountName: {svc}\n"
            "      securityContext:\n        runAsNonRoot: true\n"
            f"{init}{pod}{volumes}")


def cronjob(rng: random.Random, svc: str, image: str) -> str:
    schedule = f"{rng.randint(0, 59)} {rng.randint(0, 23)} * * *"
    return (f"apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: {svc}-nightly\n"
            f"spec:\n  schedule: \"{schedule}\"  # UTC\n  concurrencyPolicy: Forbid\n"
            "  jobTemplate:\n    spec:\n      backoffLimit: 2\n      template:\n"
            "        spec:\n          restartPolicy: OnFailure\n          containers:\n"
            f"            - name: {svc}-nightly\n              image: {image}\n"
            "              args: [\"--once\", \"--since=24h\"]\n"
            + _resources(rng, "              "))


def job(rng: random.Random, name: str, image: str) -> str:
    return (f"apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {name}\n"
            "  annotations:\n    argocd.argoproj.io/hook: Sync\nspec:\n  backoffLimit: 1\n"
            "  template:\n    spec:\n      restartPolicy: Never\n      containers:\n"
            f"        - name: {name}\n          image: {image}\n"
            "          args: [backfill, --batch=500]\n" + _resources(rng, "          "))


def service(svc: str, rng: random.Random) -> str:
    port = rng.choice((80, 8080))
    return (f"apiVersion: v1\nkind: Service\nmetadata:\n  name: {svc}\nspec:\n"
            f"  selector:\n    app.kubernetes.io/name: {svc}\n  ports:\n"
            f"    - name: http\n      port: {port}\n      targetPort: http\n")


def configmap(rng: random.Random, svc: str) -> str:
    lines = [f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {svc}-config\ndata:\n"]
    if rng.random() < 0.25:
        lines.append("  UPSTREAM: http://api:8080/v2  # the public api\n")
    elif rng.random() < 0.3:
        lines.append("  UPSTREAM: http://api.platform.svc.cluster.local\n")
    for i in range(rng.randint(3, 20)):
        lines.append(f"  {svc.upper().replace('-', '_')}_SETTING_{i}: "
                     f"\"{rng.choice(('on', 'off', '30s', '5', 'eu-west-1', 'true'))}\"\n")
    lines.append("  app.properties: |\n")
    for i in range(rng.randint(2, 12)):
        lines.append(f"    {svc}.option{i}={rng.randint(0, 10000)}\n")
    return "".join(lines)


def hpa(svc: str, kind: str) -> str:
    return (f"apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata:\n"
            f"  name: {svc}\nspec:\n  scaleTargetRef:\n    apiVersion: apps/v1\n"
            f"    kind: {kind}\n    name: {svc}\n  minReplicas: 2\n  maxReplicas: 10\n"
            "  metrics:\n    - type: Resource\n      resource:\n        name: cpu\n"
            "        target: {type: Utilization, averageUtilization: 70}\n")


def base_kustomization(names: list[str]) -> str:
    res = "".join(f"  - {n}\n" for n in names)
    return (f"apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
            f"resources:\n{res}commonLabels:\n  team: platform\n")


def overlay_kustomization(env: str, image: str, tag: str, quote: str) -> str:
    return (f"apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
            f"namespace: {env}\nresources:\n  - ../../base\npatches:\n"
            f"  - path: replicas.yaml\nimages:\n  - name: {image}\n"
            f"    newTag: {quote}{tag}{quote}   # promoted by CI\n")


def replicas_patch(svc: str, kind: str, env: str) -> str:
    n = {"dev": 1, "staging": 2, "prod": 4}[env]
    return (f"apiVersion: apps/v1\nkind: {kind}\nmetadata:\n  name: {svc}\n"
            f"spec:\n  replicas: {n}\n")


def argo_app(env: str, svc: str, source: str) -> str:
    return ("apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n"
            f"  name: {env}-{svc}\n  namespace: argocd\n"
            "  finalizers: [resources-finalizer.argocd.argoproj.io]\nspec:\n"
            "  project: default\n  source:\n"
            "    repoURL: https://git.acme.example/platform/config.git\n"
            f"    targetRevision: main\n{source}"
            f"  destination:\n    server: https://kubernetes.default.svc\n"
            f"    namespace: {env}\n  syncPolicy:\n    automated: {{prune: true, "
            "selfHeal: true}\n    syncOptions: [CreateNamespace=true]\n")


# --- Helm values, Bitnami style -------------------------------------------------------------

SECTION_KEYS = ("controller", "metrics", "persistence", "serviceAccount", "rbac", "ingress",
                "networkPolicy", "podSecurityContext", "autoscaling", "tls", "auth",
                "backup", "volumePermissions", "sidecar", "migrations", "cache", "queue",
                "tracing", "logging", "admission", "webhook", "dashboard", "exporter")


PARAM_KEYS = ("enabled", "annotations", "labels", "port", "timeout", "size", "mode", "extraArgs",
              "extraEnvVars", "nodeSelector", "priority", "resourcesPreset", "storageClass",
              "path", "hosts", "replicas")


def _param_block(rng: random.Random, path: str, indent: str, depth: int) -> Iterator[str]:
    keys = rng.sample(PARAM_KEYS, rng.randint(3, 9))
    for i, key in enumerate(keys):
        key = f"{key}{i}" if rng.random() < 0.3 else key
        yield f"{indent}## @param {path}.{key} {rng.choice(SENTENCES)}\n"
        if rng.random() < 0.3:
            yield f"{indent}## ref: https://kubernetes.io/docs/concepts/{key.lower()}/\n"
        kind = rng.random()
        if depth < 3 and kind < 0.15:
            yield f"{indent}{key}:\n"
            yield from _param_block(rng, f"{path}.{key}", indent + "  ", depth + 1)
        elif kind < 0.3:
            yield f"{indent}{key}:\n"
            for j in range(rng.randint(1, 4)):
                yield f"{indent}  - {rng.choice(('--verbose', 'a.example.com', str(j)))}\n"
        elif kind < 0.4:
            yield f"{indent}{key}: {{}}\n"
        elif kind < 0.5:
            yield f"{indent}{key}: []\n"
        elif kind < 0.7:
            yield f"{indent}{key}: \"{rng.choice(('', 'ReadWriteOnce', '8Gi', 'nano'))}\"\n"
        else:
            yield f"{indent}{key}: {rng.choice(('true', 'false', '8080', '30', 'null'))}\n"


SENTENCES = (
    "Enable the component", "Annotations to add to the resources",
    "Extra labels for the pods", "Port the container listens on",
    "Timeout in seconds before giving up", "Size of the persistent volume",
    "Override the default mode", "Extra arguments for the main process",
    "Array with extra environment variables", "Node labels for pod assignment",
    "Priority class name", "Resource preset (ignored when resources is set)",
    "Storage class of the volume", "Mount path of the data volume",
    "List of hosts for the ingress", "Number of replicas to deploy",
)


def _image_map(rng: random.Random, indent: str, image: str, tag: str, path: str) -> str:
    registry, _, repo = image.partition("/")
    if "." not in registry and ":" not in registry:  # Docker Hub
        registry, repo = "docker.io", image
    quote = rng.choice(("", '"'))
    return (f"{indent}## {path} image\n"
            f"{indent}## ref: https://hub.docker.com/r/{repo}/tags/\n"
            f"{indent}## @param {path}.image.registry [default: REGISTRY_NAME] image registry\n"
            f"{indent}## @param {path}.image.repository [default: REPOSITORY_NAME] repository\n"
            f"{indent}## @skip {path}.image.tag image tag (immutable tags are recommended)\n"
            f"{indent}## @param {path}.image.digest digest in the form sha256:aa....\n"
            f"{indent}image:\n{indent}  registry: {registry}\n{indent}  repository: {repo}\n"
            f"{indent}  tag: {quote}{tag}{quote}\n{indent}  digest: \"\"\n"
            f"{indent}  ## Specify a imagePullPolicy\n{indent}  pullPolicy: IfNotPresent\n"
            f"{indent}  pullSecrets: []\n")


def helm_values(rng: random.Random, svc: str, image: str, tag: str, lines: int,
                extra: Callable[[str], str] | None = None) -> str:
    """A large commented values file; about ``lines`` lines."""
    out = [f"# Default values for {svc}.\n# This is a YAML-formatted file.\n"
           "# Declare variables to be passed into your templates.\n\n"
           "## @section Global parameters\n"
           "## @param global.imageRegistry Global Docker image registry\n"
           "## @param global.imagePullSecrets Global Docker registry secret names\n"
           "global:\n  imageRegistry: \"\"\n  imagePullSecrets: []\n"
           "  storageClass: \"\"\n\n"
           f"fullnameOverride: \"{svc}\"\nreplicaCount: 2\n\n"]
    out.append(_image_map(rng, "", image, tag, svc))
    if extra is not None:
        out.append(extra(""))
    count = sum(s.count("\n") for s in out)
    n = 0
    while count < lines:
        key = SECTION_KEYS[n % len(SECTION_KEYS)]
        key = key if n < len(SECTION_KEYS) else f"{key}{n // len(SECTION_KEYS)}"
        n += 1
        block = [f"\n## @section {key} parameters\n##\n{key}:\n"]
        block.extend(_param_block(rng, key, "  ", 1))
        if rng.random() < 0.2:
            side_image, _, side_tag = rng.choice(SIDECARS).rpartition(":")
            block.append(_image_map(rng, "  ", side_image, side_tag, key))
        if rng.random() < 0.3:
            block.append("  " + _resources(rng, "  ").lstrip())
        text = "".join(block)
        out.append(text)
        count += text.count("\n")
    return "".join(out)


def helm_env_values(rng: random.Random, env: str, image: str, tag: str) -> str:
    repo = image.split("/", 1)[1] if "." in image.split("/", 1)[0] else image
    return (f"# {env} overrides\nreplicaCount: {1 if env == 'dev' else 3}\n"
            f"image:\n  repository: {repo}\n  tag: \"{tag}\"\n"
            + _resources(rng, ""))


# --- services -------------------------------------------------------------------------------


def kustomize_service(tree: Tree, rng: random.Random, svc: str, image: str,
                      tags: dict[str, str], *, cron: bool | None = None,
                      kind: str | None = None) -> None:
    kind = kind or ("StatefulSet" if rng.random() < 0.15 else "Deployment")
    base = f"apps/{svc}/base"
    first = tags["prod"]
    names = ["workload.yaml", "service.yaml", "configmap.yaml"]
    tree.add(f"{base}/workload.yaml", workload(rng, svc, f"{image}:{first}", kind))
    tree.add(f"{base}/service.yaml", service(svc, rng))
    tree.add(f"{base}/configmap.yaml", configmap(rng, svc))
    if rng.random() < 0.5:
        tree.add(f"{base}/hpa.yaml", hpa(svc, kind))
        names.append("hpa.yaml")
    if cron if cron is not None else rng.random() < 0.2:
        tree.add(f"{base}/cronjob.yaml", cronjob(rng, svc, f"{image}:{first}"))
        names.append("cronjob.yaml")
    tree.add(f"{base}/kustomization.yaml", base_kustomization(names))
    quote = rng.choice(("", '"'))
    for env in ENVS:
        tree.add(f"apps/{svc}/overlays/{env}/kustomization.yaml",
                 overlay_kustomization(env, image, tags[env], quote))
        tree.add(f"apps/{svc}/overlays/{env}/replicas.yaml", replicas_patch(svc, kind, env))
        source = f"    path: apps/{svc}/overlays/{env}\n"
        tree.add(f"argocd/{env}/{svc}.yaml", argo_app(env, svc, source))


def helm_service(tree: Tree, rng: random.Random, svc: str, image: str,
                 tags: dict[str, str], lines: int,
                 extra: Callable[[str], str] | None = None) -> None:
    tree.add(f"charts/{svc}/values.yaml", helm_values(rng, svc, image, tags["prod"], lines,
                                                      extra))
    for env in ENVS:
        tree.add(f"charts/{svc}/values-{env}.yaml",
                 helm_env_values(rng, env, image, tags[env]))
        source = (f"    path: charts/{svc}\n    helm:\n      valueFiles:\n"
                  f"        - values.yaml\n        - values-{env}.yaml\n")
        tree.add(f"argocd/{env}/{svc}.yaml", argo_app(env, svc, source))


def _tags(rng: random.Random) -> dict[str, str]:
    major, minor = rng.randint(0, 4), rng.randint(0, 30)
    patch = rng.randint(2, 20)
    return {"dev": f"{major}.{minor}.{patch}", "staging": f"{major}.{minor}.{patch - 1}",
            "prod": f"{major}.{minor}.{patch - 2}"}


def target_services(tree: Tree, rng: random.Random, neighbours: bool) -> None:
    """``ghcr.io/acme/api`` in exactly TARGET_FILES files; prefix-sharing neighbours
    (left out of the smallest trees, which hold only the target's own files)."""
    # api: workload + cronjob in base, three overlays  -> 5 files
    kustomize_service(tree, rng, "api", TARGET, TARGET_OLD, cron=True, kind="Deployment")
    # a canary Application overriding the image      -> 1 file
    canary = ("    path: apps/api/overlays/prod\n    kustomize:\n      images:\n"
              f"        - {TARGET}:{TARGET_OLD['prod']}\n")
    tree.add("argocd/prod/api-canary.yaml", argo_app("prod", "api-canary", canary))
    # three Helm services run the api as a sidecar    -> 3 files

    def sidecar(indent: str) -> str:
        return (f"{indent}## the api sidecar for local calls\n{indent}apiSidecar:\n"
                f"{indent}  enabled: true\n{indent}  url: http://api:8080\n"
                f"{indent}  image: {TARGET}:{TARGET_OLD['prod']}   # promoted by CI\n")

    for svc in ("storefront", "backoffice", "partner-portal"):
        helm_service(tree, rng, svc, f"ghcr.io/acme/{svc}", _tags(rng),
                     rng.randint(1500, 4000), extra=sidecar)
    # a one-off Job manifest                          -> 1 file
    tree.add("jobs/api-backfill.yaml", job(rng, "api-backfill", f"{TARGET}:{TARGET_OLD['prod']}"))
    for svc, image, tag in NEIGHBOURS if neighbours else ():
        tags = {"dev": tag, "staging": tag, "prod": tag}
        if svc in ("api-gateway", "partner-api"):
            helm_service(tree, rng, svc, image, tags, rng.randint(1500, 3000))
        else:
            kustomize_service(tree, rng, svc, image, tags)


def service_names(rng: random.Random) -> Iterator[str]:
    seen: set[str] = {"api", "storefront", "backoffice", "partner-portal"}
    seen.update(n[0] for n in NEIGHBOURS)
    n = 0
    while True:
        name = f"{rng.choice(WORDS)}-{rng.choice(SUFFIXES)}"
        if name in seen:
            n += 1
            name = f"{name}-{n}"
        seen.add(name)
        yield name


def cluster_file(rng: random.Random, i: int) -> tuple[str, str]:
    ns = f"team-{i:05d}"
    if i % 3 == 0:
        return f"cluster/namespaces/{ns}.yaml", (
            f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n"
            f"  labels:\n    owner: {rng.choice(WORDS)}\n")
    if i % 3 == 1:
        return f"cluster/rbac/{ns}.yaml", (
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n"
            f"  name: {ns}-edit\n  namespace: {ns}\nroleRef:\n"
            "  apiGroup: rbac.authorization.k8s.io\n  kind: ClusterRole\n  name: edit\n"
            f"subjects:\n  - kind: Group\n    name: {ns}-devs\n")
    return f"cluster/quotas/{ns}.yaml", (
        f"apiVersion: v1\nkind: ResourceQuota\nmetadata:\n  name: quota\n  namespace: {ns}\n"
        "spec:\n  hard:\n    requests.cpu: \"20\"\n    requests.memory: 64Gi\n"
        "    pods: \"200\"\n---\napiVersion: v1\nkind: LimitRange\nmetadata:\n"
        f"  name: limits\n  namespace: {ns}\nspec:\n  limits:\n    - type: Container\n"
        "      default: {cpu: 500m, memory: 512Mi}\n")


PROMOTER_CONFIG = """\
# Policy for promotions into this config repo (read from the base branch).
version: 1
defaults:
  auto_merge: false
  merge_method: squash
  allowed_tags: ['^v?\\d+\\.\\d+\\.\\d+$']
environments:
  dev:
    paths: ["apps/*/overlays/dev/**", "charts/*/values-dev.yaml", "argocd/dev/**"]
    auto_merge: true
  staging:
    paths: ["apps/*/overlays/staging/**", "charts/*/values-staging.yaml", "argocd/staging/**"]
    auto_merge: true
  prod:
    paths: ["apps/*/overlays/prod/**", "charts/*/values-prod.yaml", "argocd/prod/**"]
    labels: [prod]
"""


def build(files: int, seed: int) -> Tree:
    """The whole tree in memory: ``files`` manifests plus ``.promoter.yaml``."""
    rng = random.Random(seed)
    tree = Tree()
    target_services(tree, rng, neighbours=files >= NEIGHBOURS_FROM)
    names = service_names(rng)
    # room to finish the last service; cluster files fill the rest
    budget = files - 30 if files < NEIGHBOURS_FROM else files - 120
    while len(tree) < budget:
        svc = next(names)
        if rng.random() < 0.15:
            lines = rng.randint(1500, 4500) if rng.random() < 0.5 else rng.randint(80, 400)
            helm_service(tree, rng, svc, f"ghcr.io/acme/{svc}", _tags(rng), lines)
        else:
            image = rng.choice((f"ghcr.io/acme/{svc}", f"acme/{svc}",
                                f"registry.acme.internal:5000/acme/{svc}"))
            kustomize_service(tree, rng, svc, image, _tags(rng))
    i = 0
    while len(tree) < files:
        path, text = cluster_file(rng, i)
        tree.add(path, text)
        i += 1
    tree.add(".promoter.yaml", PROMOTER_CONFIG)
    return tree


def write(tree: Tree, out: Path) -> None:
    for rel, text in tree.files.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode("utf-8"))


def generate(out: Path, files: int, seed: int, *, force: bool = False) -> dict[str, object]:
    """Write the tree to ``out`` unless an identical one is already there; its stats."""
    stamp = out.with_name(out.name + STAMP)
    want = {"generator": GENERATOR_VERSION, "files": files, "seed": seed}
    if not force and stamp.is_file():
        have = json.loads(stamp.read_text(encoding="utf-8"))
        if {k: have.get(k) for k in want} == want:
            return dict(have)
    if out.exists():
        shutil.rmtree(out)
    stamp.unlink(missing_ok=True)
    out.mkdir(parents=True)
    tree = build(files, seed)
    write(tree, out)
    mention = re.compile(re.escape(TARGET) + r"(?![A-Za-z0-9_./-])")
    target = [p for p, t in tree.files.items() if mention.search(t)]
    stats: dict[str, object] = {
        **want,
        "manifests": len(tree) - 1,
        "bytes": sum(len(t.encode("utf-8")) for t in tree.files.values()),
        "lines": sum(t.count("\n") for t in tree.files.values()),
        "largest_lines": max(t.count("\n") for t in tree.files.values()),
        "target": TARGET,
        "target_files": sorted(target),
    }
    stamp.write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    return stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=10_000, help="number of YAML files")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--force", action="store_true", help="regenerate even if present")
    parser.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    if args.files < MIN_FILES:
        parser.error(f"--files must be at least {MIN_FILES} (the target's own files)")
    stats = generate(args.out, args.files, args.seed, force=args.force)
    print(json.dumps(stats, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
