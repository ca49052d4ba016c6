package embedded

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	natsd "github.com/nats-io/nats-server/v2/server"

	"github.com/stanmigrate/stanmigrate/internal/freeport"
)

// HubLeaf is a hub nats-server and a leaf node connected to it, each with
// JetStream in its own domain, both serving the account APP (user
// HubLeafUser, password HubLeafPassword) and sharing the system account,
// as a hub-and-spoke deployment does. A client of the hub reaches the
// leaf's JetStream through the leaf's domain.
type HubLeaf struct {
	Hub, Leaf       *natsd.Server
	HubURL, LeafURL string
	HubDomain       string
	LeafDomain      string
}

// The APP account's user on both servers.
const (
	HubLeafUser     = "app"
	HubLeafPassword = "app-secret"
)

const hubConf = `
server_name: hub
listen: 127.0.0.1:%d
jetstream { store_dir: %q, domain: %s }
accounts {
  APP { users = [ { user: %q, password: %q } ], jetstream: enabled }
  $SYS { users = [ { user: "sys", password: "sys-secret" } ] }
}
leafnodes { listen: 127.0.0.1:%d }
`

const leafConf = `
server_name: leaf
listen: 127.0.0.1:%d
jetstream { store_dir: %q, domain: %s }
accounts {
  APP { users = [ { user: %q, password: %q } ], jetstream: enabled }
  $SYS { users = [ { user: "sys", password: "sys-secret" } ] }
}
leafnodes {
  remotes [
    { urls: [ "nats://%s:%s@127.0.0.1:%d" ], account: APP }
    { urls: [ "nats://sys:sys-secret@127.0.0.1:%d" ], account: "$SYS" }
  ]
}
`

// StartHubLeaf starts the hub (JetStream domain "hub") and the leaf
// (domain "leaf") with stores under root, and waits until the leaf is
// connected for both accounts. The leaf runs the nats-server embedded
// here (2.15), so fast-ingest batches are available in its domain.
func StartHubLeaf(root string) (*HubLeaf, error) {
	var ports [3]int
	for i := 0; i < len(ports); {
		p, err := freeport.Port()
		if err != nil {
			return nil, err
		}
		if !slices.Contains(ports[:i], p) {
			ports[i] = p
			i++
		}
	}
	client, leafPort, leafClient := ports[0], ports[1], ports[2]
	var err error
	h := &HubLeaf{HubDomain: "hub", LeafDomain: "leaf",
		HubURL: fmt.Sprintf("nats://127.0.0.1:%d", client), LeafURL: fmt.Sprintf("nats://127.0.0.1:%d", leafClient)}
	h.Hub, err = startConf(filepath.Join(root, "hub"), fmt.Sprintf(hubConf, client, filepath.Join(root, "hub", "js"), h.HubDomain,
		HubLeafUser, HubLeafPassword, leafPort))
	if err != nil {
		return nil, err
	}
	h.Leaf, err = startConf(filepath.Join(root, "leaf"), fmt.Sprintf(leafConf, leafClient, filepath.Join(root, "leaf", "js"), h.LeafDomain,
		HubLeafUser, HubLeafPassword, HubLeafUser, HubLeafPassword, leafPort, leafPort))
	if err != nil {
		h.Hub.Shutdown()
		return nil, err
	}
	deadline := time.Now().Add(10 * time.Second)
	for h.Hub.NumLeafNodes() < 2 || h.Leaf.NumLeafNodes() < 2 {
		if time.Now().After(deadline) {
			h.Stop()
			return nil, errors.New("embedded hub and leaf: the leaf did not connect within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return h, nil
}

// startConf writes conf into dir and starts a server from it, as an
// operator's configuration file would.
func startConf(dir, conf string) (*natsd.Server, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "server.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	opts, err := natsd.ProcessConfigFile(path)
	if err != nil {
		return nil, fmt.Errorf("embedded server %s: %w", path, err)
	}
	opts.NoSigs, opts.NoLog = true, true
	srv, err := natsd.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded server %s: %w", path, err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("embedded server %s: not ready after 10s", path)
	}
	return srv, nil
}

// Stop shuts both servers down.
func (h *HubLeaf) Stop() {
	for _, s := range []*natsd.Server{h.Leaf, h.Hub} {
		if s != nil {
			s.Shutdown()
			s.WaitForShutdown()
		}
	}
}
