# Version of the local Storj network for tests. Change it here, run `make pin`, commit planet/go.mod and go.sum.
STORJ_VERSION := v1.162.3
