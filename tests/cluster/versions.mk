# Versions of the test control plane. Change a version here, run `make pin`, commit the go.mod/go.sum.
K8S_VERSION  := v1.36.3
ETCD_VERSION := v3.6.16
KWOK_VERSION := v0.8.0
HELM_VERSION := v3.22.0
