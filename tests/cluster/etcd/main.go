// Command etcd is upstream etcd's own main, built from the Go module proxy.
//
// go.etcd.io/etcd/server/v3 carries local replace directives in its go.mod, so
// `go install ...@version` refuses it; this wrapper module builds the same binary.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
