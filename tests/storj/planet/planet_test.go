// Package planet runs a local Storj network (storj.io/storj's testplanet: one satellite and
// storage nodes in this process, with the satellite's databases in PostgreSQL) for hydrafed's
// tests. It is a test file because testplanet needs a *testing.T; `go test -c` turns it into
// the binary tests/fixtures/storj.py starts.
//
// Environment:
//
//	STORJ_TEST_POSTGRES      postgres://... (required; STORJ_TEST_COCKROACH/SPANNER=omit)
//	HYDRAFED_PLANET_INFO     where to write the network's JSON (mode 0600): satellite address
//	                         and one serialized access grant per project
//	HYDRAFED_PLANET_NODES    storage nodes (default 5: erasure code 1/2/3/4)
//	HYDRAFED_PLANET_PROJECTS projects, each with its own user, API key and grant (default 4)
//	HYDRAFED_PLANET_DISK     space per storage node in bytes (default 4 GiB)
//	HYDRAFED_STORJ_ROOT      storj.io/storj's module directory: the satellite reads its mail
//	                         templates from there (testplanet looks beside its own source
//	                         file, which -trimpath leaves relative)
//
// The network runs until stdin closes or the process gets SIGTERM/SIGINT.
package planet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"storj.io/common/memory"
	"storj.io/common/testcontext"
	"storj.io/storj/private/testplanet"
	"storj.io/storj/satellite"
	"storj.io/storj/satellite/satellitedb"
	"storj.io/storj/storagenode"
	"storj.io/uplink"
)

// info is what the fixture reads; grants are secrets, so it goes to a 0600 file, never stdout.
type info struct {
	SatelliteAddr string    `json:"satellite_addr"`
	SatelliteURL  string    `json:"satellite_url"`
	NodeCount     int       `json:"node_count"`
	RS            [4]int    `json:"rs"`
	Projects      []project `json:"projects"`
}

type project struct {
	Name   string `json:"name"`
	ID     string `json:"id"`
	APIKey string `json:"api_key"`
	Access string `json:"access"`
}

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: must be a positive integer", name, v)
	}
	return n
}

// TestPlanet starts the network, writes its description and waits to be told to stop.
func TestPlanet(t *testing.T) {
	infoPath := os.Getenv("HYDRAFED_PLANET_INFO")
	if infoPath == "" {
		t.Fatal("HYDRAFED_PLANET_INFO: set it to the file the network description goes to")
	}
	nodes := envInt(t, "HYDRAFED_PLANET_NODES", 5)
	projects := envInt(t, "HYDRAFED_PLANET_PROJECTS", 4)
	disk := envInt(t, "HYDRAFED_PLANET_DISK", 4<<30)
	root := os.Getenv("HYDRAFED_STORJ_ROOT")

	testplanet.Run(t, testplanet.Config{
		SatelliteCount:   1,
		StorageNodeCount: nodes,
		UplinkCount:      projects,
		NonParallel:      true,
		// The network lives as long as the test session; testcontext's default would end it.
		Timeout: 24 * time.Hour,
		Reconfigure: testplanet.Reconfigure{
			Satellite: func(log *zap.Logger, index int, config *satellite.Config) {
				if root != "" {
					config.Mail.TemplatePath = filepath.Join(root, "web/satellite/static/emails")
					config.Console.StaticDir = filepath.Join(root, "web/satellite")
				}
				// Large objects (the 256 MiB test, QLoRA adapters) in few segments.
				config.Metainfo.MaxSegmentSize = 64 * memory.MiB
			},
			// A revoked grant is refused once the satellite's cache of revocation checks
			// expires: testplanet keeps an answer for a minute, this network for a second.
			SatelliteDBOptions: func(log *zap.Logger, index int, options *satellitedb.Options) {
				options.RevocationLRUOptions.Expiration = time.Second
			},
			StorageNode: func(index int, config *storagenode.Config) {
				config.Storage.AllocatedDiskSpace = memory.Size(disk)
			},
		},
	}, func(t *testing.T, ctx *testcontext.Context, planet *testplanet.Planet) {
		sat := planet.Satellites[0]
		rs := sat.Config.Metainfo.RS
		out := info{
			SatelliteAddr: sat.Addr(),
			SatelliteURL:  sat.URL(),
			NodeCount:     len(planet.StorageNodes),
			RS:            [4]int{rs.Min, rs.Repair, rs.Success, rs.Total},
		}
		for i, up := range planet.Uplinks {
			// A grant as a user gets it: the API key plus a key derived from a passphrase.
			pass := make([]byte, 16)
			if _, err := rand.Read(pass); err != nil {
				t.Fatal(err)
			}
			apiKey := up.APIKey[sat.ID()].Serialize()
			access, err := uplink.RequestAccessWithPassphrase(ctx, sat.URL(), apiKey, hex.EncodeToString(pass))
			if err != nil {
				t.Fatalf("project %d: access grant: %v", i, err)
			}
			serialized, err := access.Serialize()
			if err != nil {
				t.Fatal(err)
			}
			out.Projects = append(out.Projects, project{
				Name: fmt.Sprintf("project-%d", i), ID: up.Projects[0].PublicID.String(),
				APIKey: apiKey, Access: serialized,
			})
		}
		data, err := json.Marshal(out)
		if err != nil {
			t.Fatal(err)
		}
		tmp := infoPath + ".tmp"
		if err := os.WriteFile(tmp, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, infoPath); err != nil {
			t.Fatal(err)
		}
		fmt.Printf("HYDRAFED_PLANET_READY satellite=%s nodes=%d projects=%d\n",
			out.SatelliteAddr, out.NodeCount, len(out.Projects))

		waitForStop(ctx)
	})
}

// waitForStop returns when stdin reaches EOF (the fixture died or closed it) or on a signal.
func waitForStop(ctx context.Context) {
	stop := make(chan struct{}, 2)
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		stop <- struct{}{}
	}()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-stop:
	case <-sig:
	case <-ctx.Done():
	}
	signal.Stop(sig)
}
