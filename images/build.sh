#!/usr/bin/env bash
# Build the hydrafed images with buildah, without a Docker engine.
#
#   images/build.sh [--local] [operator|worker]...   (default: operator)
#
# --local: no container registry here, so the base is a Debian bookworm root filesystem made by
# mmdebstrap and imported as localhost/hydrafed-base:bookworm (the worker then is the CPU variant).
# In a sandbox buildah needs chroot isolation (set below). Images go to the default containers
# store (overlay), where podman finds them.
set -euo pipefail
cd "$(dirname "$0")/.."
export BUILDAH_ISOLATION=${BUILDAH_ISOLATION:-chroot}
TAG=${TAG:-0.1.0}
REGISTRY=${REGISTRY:-ghcr.io/hydrafed}
local=0 targets=()
for arg in "$@"; do
  case $arg in --local) local=1 ;; operator|worker) targets+=("$arg") ;; *) echo "unknown: $arg" >&2; exit 2 ;; esac
done
[ ${#targets[@]} -gt 0 ] || targets=(operator)
args=()
if [ $local = 1 ]; then
  base=localhost/hydrafed-base:bookworm
  if ! buildah inspect --type image "$base" >/dev/null 2>&1; then
    rootfs=$(mktemp -d)/rootfs.tar
    # the same suites as the public debian:12 image: bookworm, bookworm-updates, bookworm-security
    mmdebstrap --variant=apt bookworm "$rootfs" \
      "deb http://deb.debian.org/debian bookworm main" \
      "deb http://deb.debian.org/debian bookworm-updates main" \
      "deb http://deb.debian.org/debian-security bookworm-security main"
    buildah from --name hydrafed-base-import scratch >/dev/null
    buildah add hydrafed-base-import "$rootfs" /
    buildah commit --rm hydrafed-base-import "$base"
    rm -rf "$(dirname "$rootfs")"
  fi
  args+=(--build-arg "BASE=$base")
  # a sandbox that inspects TLS has its own CA: lend it to pip for the build, not to the image
  ca=${PIP_CERT:-${SSL_CERT_FILE:-}}
  if [ -n "$ca" ] && [ -f "$ca" ]; then
    args+=(--volume "$ca:/etc/ssl/build-ca.crt:ro" --build-arg PIP_CERT=/etc/ssl/build-ca.crt)
  fi
fi
for target in "${targets[@]}"; do
  extra=()
  if [ "$target" = worker ] && [ $local = 1 ]; then
    extra+=(--build-arg "PYTHON_PACKAGES=python3=3.11.2-1+b1 python3-venv=3.11.2-1+b1 ca-certificates=20250419~deb12u2")
  fi
  start=$(date +%s)
  nice buildah build --layers -f "images/$target.Containerfile" "${args[@]}" "${extra[@]}" \
    -t "$REGISTRY/$target:$TAG" .
  echo "built $REGISTRY/$target:$TAG in $(( $(date +%s) - start ))s"
done
