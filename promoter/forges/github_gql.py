"""The GraphQL documents the GitHub forge sends, and what it reads from their answers.

Pure: documents are built from values and answers are parsed into values; the forge
sends them (``requester.graphql_query``) under its retry policy.

    RUN        one query for what a promotion reads up front: the repository's node id,
               the default branch (or the named base) with its tip and tree, the
               promotion branch's tip (message, parents, signature), the open pull
               requests from that branch, and the repository's labels (node ids)
    COMMIT     ``createRef`` (the branch, at the base) then ``createCommitOnBranch``
               (the commit, atomic, checked against ``expectedHeadOid`` = the base);
               GitHub signs such commits (Verified)
    AUTO_MERGE ``addLabelsToLabelable`` (when labels are still due) then
               ``enablePullRequestAutoMerge`` pinned to the head promoter wrote

Mutations in one document run in order, and one that fails leaves the others to run:
the answers are read field by field.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from promoter.forges.base import Head, MergeMethod, PullRequest

LABELS_READ = 100  # labels of the repository read by the run query (GitHub's page limit)
PULLS_READ = 10


@dataclass(frozen=True)
class Tip:
    branch: str
    sha: str
    tree: str
    root: tuple[tuple[str, str, str], ...] = ()  # the root tree: (name, mode, oid)


@dataclass(frozen=True)
class OpenPull:
    pull: PullRequest
    node_id: str
    head_repo: str


@dataclass(frozen=True)
class RunAnswer:
    """What the run query found; ``base`` is None when that branch does not exist."""

    repository_id: str
    base: Tip | None
    head: Head | None  # the promotion branch's tip (None: no such branch, or not asked)
    head_signed: bool
    pulls: tuple[OpenPull, ...]
    labels: Mapping[str, str]  # name -> node id


_TIP = "name target { oid ... on Commit { tree { oid entries { name mode oid } } } }"


def run_query(base: str | None, branch: str | None) -> tuple[str, dict[str, Any]]:
    """The run query's document and the variables it declares (no unused ones)."""
    declared = ["$owner: String!", "$name: String!"]
    fields = ["id"]
    variables: dict[str, Any] = {}
    if base is None:
        fields.append(f"defaultBranchRef {{ {_TIP} }}")
    else:
        declared.append("$base: String!")
        variables["base"] = f"refs/heads/{base}"
        fields.append(f"base: ref(qualifiedName: $base) {{ {_TIP} }}")
    if branch is not None:
        declared += ["$branch: String!", "$branchName: String!"]
        variables["branch"] = f"refs/heads/{branch}"
        variables["branchName"] = branch
        fields.append(
            "promotion: ref(qualifiedName: $branch) { target { ... on Commit { oid message "
            "parents(first: 2) { nodes { oid } } signature { isValid } } } }")
        fields.append(
            f"pullRequests(headRefName: $branchName, states: [OPEN], first: {PULLS_READ}) "
            "{ nodes { id number url title body headRefName baseRefName headRefOid state "
            "headRepository { nameWithOwner } autoMergeRequest { mergeMethod } "
            "labels(first: 100) { nodes { name } } } }")
    fields.append(f"labels(first: {LABELS_READ}) {{ nodes {{ id name }} }}")
    document = (f"query PromoterRun({', '.join(declared)}) {{ "
                f"repository(owner: $owner, name: $name) {{ {' '.join(fields)} }} }}")
    return document, variables


def parse_run(data: Mapping[str, Any], base: str | None) -> RunAnswer | None:
    """The run query's answer; None when the repository is not there."""
    repo = (data.get("data") or {}).get("repository")
    if not isinstance(repo, dict):
        return None
    ref = repo.get("defaultBranchRef") if base is None else repo.get("base")
    tip = None
    if isinstance(ref, dict) and isinstance(ref.get("target"), dict):
        target = ref["target"]
        tree = target.get("tree") or {}
        # GraphQL gives a mode as an integer: git writes it in octal ("100644")
        root = tuple((str(e["name"]), format(int(e["mode"]), "o"), str(e["oid"]))
                     for e in tree.get("entries") or [])
        tip = Tip(str(ref.get("name") or base), str(target["oid"]), str(tree.get("oid") or ""),
                  root)
    head, signed = None, False
    promotion = repo.get("promotion")
    if isinstance(promotion, dict) and isinstance(promotion.get("target"), dict):
        target = promotion["target"]
        parents = tuple(str(p["oid"]) for p in (target.get("parents") or {}).get("nodes") or [])
        head = Head(str(target["oid"]), str(target.get("message") or ""), parents)
        signed = bool((target.get("signature") or {}).get("isValid"))
    pulls = []
    for node in (repo.get("pullRequests") or {}).get("nodes") or []:
        state = str(node.get("state") or "").lower()
        pulls.append(OpenPull(PullRequest(
            number=int(node["number"]), url=str(node.get("url") or ""),
            branch=str(node.get("headRefName") or ""),
            base=str(node.get("baseRefName") or ""), title=str(node.get("title") or ""),
            body=str(node.get("body") or ""), head_sha=str(node.get("headRefOid") or ""),
            state="open" if state == "open" else state,
            labels=tuple(str(label["name"]) for label in
                         (node.get("labels") or {}).get("nodes") or []),
            auto_merge=_auto_merge_method(node.get("autoMergeRequest"))),
            str(node.get("id") or ""),
            str((node.get("headRepository") or {}).get("nameWithOwner") or "")))
    labels = {str(n["name"]): str(n["id"])
              for n in (repo.get("labels") or {}).get("nodes") or []}
    return RunAnswer(str(repo.get("id") or ""), tip, head, signed, tuple(pulls), labels)


def _auto_merge_method(request: Any) -> str | None:
    if not isinstance(request, dict) or not request.get("mergeMethod"):
        return None
    return str(request["mergeMethod"]).lower()


COMMIT = ("mutation PromoterCommit($ref: CreateRefInput!, "
          "$commit: CreateCommitOnBranchInput!) { "
          "createRef(input: $ref) { ref { name } } "
          "createCommitOnBranch(input: $commit) { commit { oid } } }")


def split_message(message: str) -> tuple[str, str]:
    """(headline, body) as ``createCommitOnBranch`` takes a message: GitHub joins them
    with a blank line."""
    headline, _, rest = message.strip().partition("\n")
    return headline.strip(), rest.strip("\n")


def as_stored(message: str) -> str:
    """The message GitHub records for ``message`` sent as headline and body."""
    headline, body = split_message(message)
    return headline + ("\n\n" + body if body else "")


def commit_variables(repository_id: str, slug: str, branch: str, base_sha: str,
                     files: Mapping[str, bytes], message: str) -> dict[str, Any]:
    headline, body = split_message(message)
    return {
        "ref": {"repositoryId": repository_id, "name": f"refs/heads/{branch}",
                "oid": base_sha},
        "commit": {
            "branch": {"repositoryNameWithOwner": slug, "branchName": branch},
            "expectedHeadOid": base_sha,
            "message": {"headline": headline, "body": body},
            "fileChanges": {"additions": [
                {"path": path, "contents": base64.b64encode(data).decode("ascii")}
                for path, data in sorted(files.items())]},
        },
    }


def committed(data: Mapping[str, Any]) -> str | None:
    """The oid ``createCommitOnBranch`` answered, if it made the commit."""
    made = (data.get("data") or {}).get("createCommitOnBranch")
    oid = ((made or {}).get("commit") or {}).get("oid") if isinstance(made, dict) else None
    return str(oid) if oid else None


def auto_merge_document(with_labels: bool) -> str:
    declared = "$merge: EnablePullRequestAutoMergeInput!"
    fields = ("enablePullRequestAutoMerge(input: $merge) { clientMutationId "
              "actor { login } }")
    if with_labels:
        declared = "$labels: AddLabelsToLabelableInput!, " + declared
        fields = "addLabelsToLabelable(input: $labels) { clientMutationId } " + fields
    return f"mutation PromoterAutoMerge({declared}) {{ {fields} }}"


DISABLE_AUTO_MERGE = ("mutation PromoterDisableAutoMerge($merge: DisablePullRequestAutoMergeInput!)"
                      " { disablePullRequestAutoMerge(input: $merge) { clientMutationId } }")


def auto_merge_variables(node_id: str, method: MergeMethod, sha: str, message: str,
                         label_ids: Sequence[str]) -> dict[str, Any]:
    title, _, body = message.strip().partition("\n\n")
    merge: dict[str, Any] = {"pullRequestId": node_id, "mergeMethod": method.upper(),
                             "expectedHeadOid": sha}
    if title:
        merge["commitHeadline"] = title
    if body:
        merge["commitBody"] = body
    out: dict[str, Any] = {"merge": merge}
    if label_ids:
        out["labels"] = {"labelableId": node_id, "labelIds": list(label_ids)}
    return out


def errors_of(data: Any, field: str | None = None) -> list[Mapping[str, Any]]:
    """The GraphQL errors of an answer (of one field's path when ``field`` is given)."""
    if not isinstance(data, dict):
        return []
    found: list[Mapping[str, Any]] = [e for e in data.get("errors") or []
                                      if isinstance(e, dict)]
    if field is None:
        return found
    return [e for e in found if (e.get("path") or [None])[0] == field]
