#!/usr/bin/env bash
# Regenerate the wrapper modules' go.mod/go.sum for the versions in versions.mk.
#
# k8s.io/kubernetes requires its staging modules at v0.0.0 and satisfies them with local replaces
# that do not exist outside its repository, so the wrapper replaces each one with its published
# v0.Y.Z tag. The list is derived from the published go.mod, never hard-coded: every new minor
# may add a staging module (1.36 added cri-streaming and streaming).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
eval "$(sed -n 's/^\([A-Z0-9_]*\) *:= *\(.*\)$/\1=\2/p' "$here/versions.mk")"
export GOWORK=off GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod

staging_version="v0.${K8S_VERSION#v1.}"

pin_kube() {
  cd "$here/kube"
  rm -f go.mod go.sum
  go mod init hydrafed.io/testcluster/kube >/dev/null 2>&1
  go mod edit -go=1.26.0
  local gomod
  gomod=$(go mod download -json "k8s.io/kubernetes@${K8S_VERSION}" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')
  local staging
  staging=$(awk '$1 ~ /^k8s\.io\// && $2 == "v0.0.0" {print $1}' "$gomod" | sort -u)
  [ -n "$staging" ] || { echo "no k8s.io/* v0.0.0 requirements found in $gomod" >&2; exit 1; }
  echo "kube: replacing $(echo "$staging" | wc -l) staging modules with ${staging_version}"
  for m in $staging; do
    go mod edit -replace="${m}=${m}@${staging_version}"
  done
  go mod edit -require="k8s.io/kubernetes@${K8S_VERSION}"
  for t in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    go mod edit -tool="k8s.io/kubernetes/cmd/$t"
  done
  go mod tidy
}

pin_tool() {  # dir module version tool-package
  cd "$here/$1"
  rm -f go.mod go.sum
  go mod init "hydrafed.io/testcluster/$1" >/dev/null 2>&1
  go mod edit -go=1.26.0
  go mod edit -require="$2@$3"
  go mod edit -tool="$4"
  go mod tidy
}

pin_etcd() {
  cd "$here/etcd"
  rm -f go.mod go.sum
  go mod init hydrafed.io/testcluster/etcd >/dev/null 2>&1
  go mod edit -go=1.26.0
  go mod edit -require="go.etcd.io/etcd/server/v3@${ETCD_VERSION}"
  go mod tidy
}

case "${1:-all}" in
  kube) pin_kube ;;
  etcd) pin_etcd ;;
  kwok) pin_tool kwok sigs.k8s.io/kwok "$KWOK_VERSION" sigs.k8s.io/kwok/cmd/kwok ;;
  helm) pin_tool helm helm.sh/helm/v3 "$HELM_VERSION" helm.sh/helm/v3/cmd/helm ;;
  all)
    (pin_kube); (pin_etcd)
    (pin_tool kwok sigs.k8s.io/kwok "$KWOK_VERSION" sigs.k8s.io/kwok/cmd/kwok)
    (pin_tool helm helm.sh/helm/v3 "$HELM_VERSION" helm.sh/helm/v3/cmd/helm) ;;
  *) echo "usage: $0 [kube|etcd|kwok|helm|all]" >&2; exit 2 ;;
esac
