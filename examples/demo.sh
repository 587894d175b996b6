#!/usr/bin/env bash
# make demo: a real promotion, end to end, with no account anywhere.
# The bundled example config repo (examples/config-repo) is pushed to a local bare git
# repo; promote then works on it exactly as on any remote, through the plain-git forge.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# Everything lives in one directory that is kept afterwards, so the paths printed below
# (the remote, the promotion branches) can still be looked at; it is named at the end.
work=$(mktemp -d "${TMPDIR:-/tmp}/promoter-demo.XXXXXX")
remote="$work/config.git"
ident=(-c user.name="Demo" -c user.email="demo@example.invalid")

git init -q --bare "$remote"
git -C "$remote" symbolic-ref HEAD refs/heads/main
cp -R "$here/config-repo" "$work/seed"
git -C "$work/seed" init -q
git -C "$work/seed" checkout -q -b main
git -C "$work/seed" add -A
git -C "$work/seed" "${ident[@]}" commit -q -m "config: initial environments"
git -C "$work/seed" push -q "$remote" main

# who the promotion commits are by (also --author, or author: in .promoter.yaml; without
# them plain git takes the CI user, or git's user.name / user.email)
export PROMOTE_AUTHOR="promoter demo <demo@example.invalid>"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "CI built ghcr.io/acme/api:1.5.0 -> dev (policy: dev auto-merges minor steps)"
promote --repo "$remote" --env dev --image ghcr.io/acme/api:1.5.0

say "promote what dev runs into staging (policy: staging requires dev to run it first)"
promote --repo "$remote" --env staging --from dev --image ghcr.io/acme/api

say "a major step straight to staging is proposed but not merged by itself"
promote --repo "$remote" --env staging --image ghcr.io/acme/api:2.0.0 || true

say "prod: proposed on a branch for review (prod never auto-merges)"
promote --repo "$remote" --env prod --from staging --image ghcr.io/acme/api

say "re-running the same promotion changes nothing"
promote --repo "$remote" --env prod --from staging --image ghcr.io/acme/api

say "history, read back from the commit trailers"
promote --repo "$remote" --history --image ghcr.io/acme/api

say "the config repo now"
git --git-dir "$remote" log --oneline --graph --all --decorate

say "kept for you to look at: $work"
echo "  the config repo: git --git-dir $remote log --all"
echo "  remove it with:  rm -rf $work"
