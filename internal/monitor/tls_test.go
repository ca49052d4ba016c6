package monitor

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stanmigrate/stanmigrate/internal/testkit/embedded"
	"github.com/stanmigrate/stanmigrate/internal/testkit/testcerts"
)

// TestHTTPSMonitoringWithCustomCAAndClientCertificate reads a real STAN
// server's monitoring pages through an HTTPS reverse proxy that, like an
// operator's nginx, demands a client certificate: the client gets through
// with the CA and its certificate, and says what is wrong without them.
func TestHTTPSMonitoringWithCustomCAAndClientCertificate(t *testing.T) {
	certs, err := testcerts.Generate(filepath.Join(t.TempDir(), "certs"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := embedded.StartSTAN(embedded.STANConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Stop)
	backend, _ := url.Parse(st.MonitorURL())
	proxy := httptest.NewUnstartedServer(httputil.NewSingleHostReverseProxy(backend))
	serverCert, err := tls.LoadX509KeyPair(certs.ServerCert, certs.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, _ := os.ReadFile(certs.CA)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	proxy.TLS = &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert}
	proxy.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are the point
	proxy.StartTLS()
	t.Cleanup(proxy.Close)

	tests := []struct {
		name             string
		ca, cert, key    string
		wantErr          error
		wantText         string
		wantConstructErr bool
	}{
		{name: "CA and client certificate", ca: certs.CA, cert: certs.ClientCert, key: certs.ClientKey},
		{name: "system roots only", wantErr: ErrTLS, wantText: "--stan-monitor-ca"},
		{name: "another CA", ca: certs.OtherCA, cert: certs.ClientCert, key: certs.ClientKey, wantErr: ErrTLS, wantText: "not signed by a CA"},
		{name: "no client certificate", ca: certs.CA, wantErr: ErrTLS, wantText: "client certificate"},
		{name: "certificate without its key", ca: certs.CA, cert: certs.ClientCert, wantConstructErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hc, err := HTTPClient(tt.ca, tt.cert, tt.key)
			if tt.wantConstructErr {
				if err == nil {
					t.Fatal("HTTPClient accepted a certificate without a key")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			srv, err := New(proxy.URL, hc).Serverz(context.Background())
			if tt.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				if srv.ClusterID != st.ClusterID() {
					t.Fatalf("cluster id %q through the proxy, want %q", srv.ClusterID, st.ClusterID())
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("got %v, want %v", err, tt.wantErr)
			}
			for _, w := range []string{proxy.URL, "TLS handshake failed", tt.wantText} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q: %v", w, err)
				}
			}
		})
	}
}
