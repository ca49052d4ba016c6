#!/usr/bin/env bash
# Builds stanmigrate's image from this checkout, offline: a static binary
# and the build machine's CA bundle are staged into a private build context
# with the root Dockerfile, then `podman build` (ENGINE=docker for Docker).
#
#   .ci/image.sh [TAG]        default TAG: localhost/stanmigrate:dev
#
# Nothing is written into the checkout; the context is removed afterwards.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
tag=${1:-localhost/stanmigrate:dev}
engine=${ENGINE:-podman}
ca=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}

if [ ! -s "$ca" ]; then
  echo "image.sh: no CA bundle at $ca: install Debian's ca-certificates or set CA_BUNDLE" >&2
  exit 2
fi
ctx=$(mktemp -d "${TMPDIR:-/tmp}/stanmigrate-image.XXXXXX")
trap 'rm -rf "$ctx"' EXIT

mkdir -p "$ctx/.ci/image"
(cd "$repo" && CGO_ENABLED=0 go build -trimpath -o "$ctx/stanmigrate" ./cmd/stanmigrate)
cp "$ca" "$ctx/ca-certificates.crt"
cp -R "$repo/.ci/image/state" "$ctx/.ci/image/state"
cp "$repo/Dockerfile" "$repo/.dockerignore" "$ctx/"
"$engine" build --pull=never -q -t "$tag" -f "$ctx/Dockerfile" "$ctx"
