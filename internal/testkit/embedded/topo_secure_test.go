package embedded_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	natsd "github.com/nats-io/nats-server/v2/server"
	stand "github.com/nats-io/nats-streaming-server/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/stan.go"

	"github.com/stanmigrate/stanmigrate/internal/testkit/embedded"
	"github.com/stanmigrate/stanmigrate/internal/testkit/testcerts"
)

// TestSecuredTopologies runs every topology with TLS and a user and
// password on its client ports through the Configure hooks.
func TestSecuredTopologies(t *testing.T) {
	certs, err := testcerts.Generate(filepath.Join(t.TempDir(), "certs"))
	if err != nil {
		t.Fatal(err)
	}
	sec := embedded.Security{
		Users:   []*natsd.User{{Username: "app", Password: "secret"}},
		TLSCert: certs.ServerCert, TLSKey: certs.ServerKey, TLSCA: certs.CA,
	}
	stanHook, err := sec.ConfigureSTAN(embedded.Client{User: "app", Password: "secret", CA: certs.CA})
	if err != nil {
		t.Fatal(err)
	}
	jsHook, err := sec.ConfigureJetStream()
	if err != nil {
		t.Fatal(err)
	}
	clientOpts := []nats.Option{nats.UserInfo("app", "secret"), nats.RootCAs(certs.CA), nats.MaxReconnects(-1), nats.ReconnectWait(50 * time.Millisecond)}
	pem, err := os.ReadFile(certs.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	https := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}

	stanCheck := func(t *testing.T, clusterID, urls string, monitorURL string) {
		t.Helper()
		nc, err := nats.Connect(urls, clientOpts...)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		sc, err := stan.Connect(clusterID, "secured", stan.NatsConn(nc))
		if err != nil {
			t.Fatal(err)
		}
		defer sc.Close()
		if err := sc.Publish("s", []byte("x")); err != nil {
			t.Fatal(err)
		}
		resp, err := https.Get(monitorURL + stand.ServerPath)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("HTTPS serverz: %s", resp.Status)
		}
	}

	t.Run("jetstream", func(t *testing.T) {
		c := startJSCluster(t, embedded.JetStreamClusterConfig{Configure: func(_ int, o *natsd.Options) { jsHook(o) }})
		nc, err := nats.Connect(c.URLs(), clientOpts...)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		js, _ := jetstream.New(nc)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		createR3(t, ctx, c, js, "SEC")
		if _, err := js.Publish(ctx, "SEC.x", []byte("x")); err != nil {
			t.Fatal(err)
		}
		if _, err := nats.Connect(c.URLs(), nats.RootCAs(certs.CA), nats.NoReconnect()); err == nil {
			t.Fatal("connected without credentials")
		}
	})
	t.Run("stan-cluster", func(t *testing.T) {
		c, err := embedded.StartSTANCluster(embedded.STANClusterConfig{Dir: t.TempDir(),
			Configure: func(_ int, s *stand.Options, n *natsd.Options) { stanHook(s, n) }}.FastRaft())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Stop()
		stanCheck(t, c.ClusterID(), c.URLs(), c.MonitorURLs()[c.Leader()])
	})
	t.Run("stan-ft", func(t *testing.T) {
		f, err := embedded.StartSTANFT(embedded.STANFTConfig{Dir: t.TempDir(),
			Configure: func(_ int, s *stand.Options, n *natsd.Options) { stanHook(s, n) }})
		if err != nil {
			t.Fatal(err)
		}
		defer f.Stop()
		stanCheck(t, f.ClusterID(), f.URLs(), f.MonitorURLs()[f.Active()])
	})
}
