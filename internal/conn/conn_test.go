package conn

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	natsd "github.com/nats-io/nats-server/v2/server"

	"github.com/stanmigrate/stanmigrate/internal/testkit/embedded"
	"github.com/stanmigrate/stanmigrate/internal/testkit/testcerts"
)

func startJetStream(t *testing.T, sec embedded.Security) *embedded.JetStream {
	t.Helper()
	hook, err := sec.ConfigureJetStream()
	if err != nil {
		t.Fatal(err)
	}
	js, err := embedded.StartJetStream(embedded.JetStreamConfig{Dir: t.TempDir(), Configure: hook})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(js.Stop)
	return js
}

func startSTAN(t *testing.T, sec embedded.Security, internal embedded.Client) *embedded.STAN {
	t.Helper()
	hook, err := sec.ConfigureSTAN(internal)
	if err != nil {
		t.Fatal(err)
	}
	st, err := embedded.StartSTAN(embedded.STANConfig{NoMonitor: true, Configure: hook})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Stop)
	return st
}

func withUserinfo(u, info string) string { return strings.Replace(u, "://", "://"+info+"@", 1) }

// TestConnectFailuresSayWhatFailedWhereAndWhatToCheck connects to real
// servers secured in every way an operator's are, with something wrong
// each time, and checks the error a user would read: its class (exit code
// 2 follows from it), the side, the server URL without credentials, the
// setting to check, and that no secret is quoted.
func TestConnectFailuresSayWhatFailedWhereAndWhatToCheck(t *testing.T) {
	dir := t.TempDir()
	certs, err := testcerts.Generate(filepath.Join(dir, "certs"))
	if err != nil {
		t.Fatal(err)
	}
	const secret = "Hunter2-Xq9"
	tlsSec := embedded.Security{TLSCert: certs.ServerCert, TLSKey: certs.ServerKey}

	// JetStream over TLS with two users: one may use JetStream, one not.
	users := tlsSec
	users.Users = []*natsd.User{
		{Username: "app", Password: "app-" + secret},
		{Username: "nojs", Password: "nojs-" + secret, Permissions: &natsd.Permissions{
			Publish: &natsd.SubjectPermission{Deny: []string{"$JS.API.>"}}}},
	}
	jsUsers := startJetStream(t, users)

	expired := embedded.Security{TLSCert: certs.ExpiredCert, TLSKey: certs.ExpiredKey}
	jsExpired := startJetStream(t, expired)
	wrongHost := embedded.Security{TLSCert: certs.WrongHostCert, TLSKey: certs.WrongHostKey}
	jsWrongHost := startJetStream(t, wrongHost)
	mutual := embedded.Security{TLSCert: certs.ServerCert, TLSKey: certs.ServerKey, TLSCA: certs.CA, VerifyClients: true}
	jsMutual := startJetStream(t, mutual)
	jsOpen := startJetStream(t, embedded.Security{})
	jsToken := startJetStream(t, embedded.Security{Token: "token-" + secret})
	knownKey, err := embedded.WriteNKey(filepath.Join(dir, "known.nk"))
	if err != nil {
		t.Fatal(err)
	}
	unknownSeed := filepath.Join(dir, "unknown.nk")
	if _, err := embedded.WriteNKey(unknownSeed); err != nil {
		t.Fatal(err)
	}
	jsNKey := startJetStream(t, embedded.Security{NKeys: []*natsd.NkeyUser{{Nkey: knownKey}}})

	// Decentralised auth: account A has JetStream, account B has not; a
	// second operator's user is trusted by nobody.
	op, err := embedded.NewOperator()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := op.NewAccount("A", true); err != nil {
		t.Fatal(err)
	}
	noJSCreds := filepath.Join(dir, "b.creds")
	if err := op.AccountCreds(noJSCreds, "B", "b", false); err != nil {
		t.Fatal(err)
	}
	strangerCreds := filepath.Join(dir, "stranger.creds")
	if err := embedded.UntrustedCreds(strangerCreds); err != nil {
		t.Fatal(err)
	}
	jsOperator := startJetStream(t, embedded.Security{Operator: op})

	// STAN whose own connections use an internal user, and client users
	// that lack what the STAN protocol needs.
	stanSec := embedded.Security{Users: []*natsd.User{
		{Username: "stan", Password: "stan-" + secret},
		{Username: "reader", Password: "reader-" + secret},
		{Username: "nopub", Password: "nopub-" + secret, Permissions: &natsd.Permissions{
			Publish: &natsd.SubjectPermission{Deny: []string{"_STAN.>"}}}},
		{Username: "nosub", Password: "nosub-" + secret, Permissions: &natsd.Permissions{
			Subscribe: &natsd.SubjectPermission{Deny: []string{"_INBOX.>"}}}},
	}}
	st := startSTAN(t, stanSec, embedded.Client{User: "stan", Password: "stan-" + secret})

	type tc struct {
		name  string
		side  Side
		stan  string // cluster id: connect as a STAN client instead
		want  error
		wants []string
	}
	tests := []tc{
		{name: "wrong password", side: Side{Name: "JetStream", URL: jsUsers.URL(), User: "app", Password: "wrong-" + secret, TLSCA: certs.CA},
			want: ErrAuth, wants: []string{"authentication failed", "--nats-user/--nats-password"}},
		{name: "wrong password in the URL", side: Side{Name: "JetStream", URL: withUserinfo(jsUsers.URL(), "app:wrong-"+secret), TLSCA: certs.CA},
			want: ErrAuth, wants: []string{"authentication failed"}},
		{name: "no credentials", side: Side{Name: "JetStream", URL: jsUsers.URL(), TLSCA: certs.CA},
			want: ErrAuth, wants: []string{"authentication failed"}},
		{name: "wrong token", side: Side{Name: "JetStream", URL: jsToken.URL(), Token: "wrong-" + secret},
			want: ErrAuth, wants: []string{"authentication failed", "--nats-token"}},
		{name: "unknown nkey", side: Side{Name: "JetStream", URL: jsNKey.URL(), NKey: unknownSeed},
			want: ErrAuth, wants: []string{"authentication failed", "--nats-nkey"}},
		{name: "credentials of an untrusted operator", side: Side{Name: "JetStream", URL: jsOperator.URL(), Creds: strangerCreds},
			want: ErrAuth, wants: []string{"authentication failed", "--nats-creds"}},
		{name: "JetStream API denied", side: Side{Name: "JetStream", URL: jsUsers.URL(), User: "nojs", Password: "nojs-" + secret, TLSCA: certs.CA},
			want: ErrPermission, wants: []string{"authorization violation", "$JS.API", "grant the user"}},
		{name: "JetStream not enabled for the account", side: Side{Name: "JetStream", URL: jsOperator.URL(), Creds: noJSCreds},
			want: ErrNoJetStream, wants: []string{"JetStream is not enabled", "account"}},
		{name: "CA not given", side: Side{Name: "JetStream", URL: jsUsers.URL(), User: "app", Password: "app-" + secret},
			want: ErrTLS, wants: []string{"TLS handshake failed", "not signed by a CA", "--nats-tls-ca"}},
		{name: "wrong CA", side: Side{Name: "JetStream", URL: jsUsers.URL(), User: "app", Password: "app-" + secret, TLSCA: certs.OtherCA},
			want: ErrTLS, wants: []string{"TLS handshake failed", "--nats-tls-ca"}},
		{name: "expired server certificate", side: Side{Name: "JetStream", URL: jsExpired.URL(), TLSCA: certs.CA},
			want: ErrTLS, wants: []string{"TLS handshake failed", "expired"}},
		{name: "certificate for another host", side: Side{Name: "JetStream", URL: jsWrongHost.URL(), TLSCA: certs.CA},
			want: ErrTLS, wants: []string{"TLS handshake failed", "host name"}},
		{name: "mutual TLS without a client certificate", side: Side{Name: "JetStream", URL: jsMutual.URL(), TLSCA: certs.CA},
			want: ErrTLS, wants: []string{"TLS handshake failed", "client certificate", "--nats-tls-cert"}},
		{name: "mutual TLS with a client certificate of another CA", side: Side{Name: "JetStream", URL: jsMutual.URL(), TLSCA: certs.CA, TLSCert: certs.OtherClientCert, TLSKey: certs.OtherClientKey},
			want: ErrTLS, wants: []string{"TLS handshake failed", "client certificate"}},
		{name: "TLS asked of a server without it", side: Side{Name: "JetStream", URL: jsOpen.URL(), TLSCA: certs.CA},
			want: ErrTLS, wants: []string{"does not offer TLS"}},
		{name: "STAN: wrong password", side: Side{Name: "STAN", URL: st.URL(), User: "reader", Password: "wrong-" + secret}, stan: st.ClusterID(),
			want: ErrAuth, wants: []string{"authentication failed", "--stan-user/--stan-password"}},
		{name: "STAN: publish on _STAN denied", side: Side{Name: "STAN", URL: st.URL(), User: "nopub", Password: "nopub-" + secret}, stan: st.ClusterID(),
			want: ErrPermission, wants: []string{"authorization violation", "Publish", "_STAN.>"}},
		{name: "STAN: subscribe on _INBOX denied", side: Side{Name: "STAN", URL: st.URL(), User: "nosub", Password: "nosub-" + secret}, stan: st.ClusterID(),
			want: ErrPermission, wants: []string{"authorization violation", "Subscription", "_INBOX.>"}},
		{name: "STAN: wrong cluster id", side: Side{Name: "STAN", URL: st.URL(), User: "reader", Password: "reader-" + secret}, stan: "prod",
			want: ErrWrongCluster, wants: []string{`"prod"`, "--cluster"}},
		{name: "missing credentials file", side: Side{Name: "STAN", URL: st.URL(), Creds: filepath.Join(dir, "nope.creds")}, stan: st.ClusterID(),
			want: ErrBadConfig, wants: []string{"--stan-creds", "nope.creds", "no such file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			start := time.Now()
			var err error
			if tt.stan != "" {
				var sc *STAN
				sc, err = ConnectSTAN(ctx, tt.side, tt.stan, "conn-test", nil)
				if err == nil {
					sc.Close()
				}
			} else {
				var nc interface{ Close() }
				nc, _, err = JetStream(ctx, tt.side, "conn-test")
				if err == nil {
					nc.Close()
				}
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want an error wrapping %q", err, tt.want)
			}
			msg := err.Error()
			t.Logf("%s", msg)
			host := strings.TrimPrefix(tt.side.URL, "nats://")
			if i := strings.LastIndex(host, "@"); i >= 0 {
				host = host[i+1:]
			}
			for _, w := range append([]string{tt.side.Name + " ", host}, tt.wants...) {
				if !strings.Contains(msg, w) {
					t.Errorf("error lacks %q:\n%s", w, msg)
				}
			}
			if strings.Contains(msg, secret) {
				t.Errorf("error quotes a secret:\n%s", msg)
			}
			// Denied requests are reported asynchronously; the connection
			// must not wait out its request timeout for them.
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("took %v to fail", d)
			}
		})
	}
}

// TestContextSuppliesURLCredentialsAndTLSAndFlagsOverrideIt writes NATS CLI
// contexts the way `nats context save` does and connects through them to
// a server that needs TLS and a password: the context alone is enough,
// and a flag's setting replaces the context's (a flag's user never travels
// with the context's credentials file).
func TestContextSuppliesURLCredentialsAndTLSAndFlagsOverrideIt(t *testing.T) {
	dir := t.TempDir()
	certs, err := testcerts.Generate(filepath.Join(dir, "certs"))
	if err != nil {
		t.Fatal(err)
	}
	op, err := embedded.NewOperator()
	if err != nil {
		t.Fatal(err)
	}
	goodCreds := filepath.Join(dir, "good.creds")
	if err := op.AccountCreds(goodCreds, "A", "good", true); err != nil {
		t.Fatal(err)
	}
	badCreds := filepath.Join(dir, "bad.creds")
	if err := embedded.UntrustedCreds(badCreds); err != nil {
		t.Fatal(err)
	}
	srv := startJetStream(t, embedded.Security{Operator: op, TLSCert: certs.ServerCert, TLSKey: certs.ServerKey})
	seed := filepath.Join(dir, "user.nk")
	pub, err := embedded.WriteNKey(seed)
	if err != nil {
		t.Fatal(err)
	}
	nkeySrv := startJetStream(t, embedded.Security{NKeys: []*natsd.NkeyUser{{Nkey: pub}}, TLSCert: certs.ServerCert, TLSKey: certs.ServerKey})

	xdg := filepath.Join(dir, "config")
	t.Setenv("XDG_CONFIG_HOME", xdg)
	writeContext(t, xdg, "good", map[string]string{"url": srv.URL(), "creds": goodCreds, "ca": certs.CA})
	writeContext(t, xdg, "stale", map[string]string{"url": "nats://127.0.0.1:1", "creds": badCreds, "ca": certs.OtherCA})
	writeContext(t, xdg, "domain", map[string]string{"url": srv.URL(), "creds": goodCreds, "ca": certs.CA, "jetstream_domain": "hub"})
	writeContext(t, xdg, "prefix", map[string]string{"url": srv.URL(), "creds": goodCreds, "ca": certs.CA, "jetstream_api_prefix": "hub.js"})

	tests := []struct {
		name string
		side Side
		want error
	}{
		{"context alone", Side{Context: "good"}, nil},
		// nats.go refuses an NKey next to a JWT: the context's must go.
		{"a flag's NKey replaces the context's credentials file", Side{Context: "stale", URL: nkeySrv.URL(), NKey: seed, TLSCA: certs.CA}, nil},
		{"flags override URL, credentials and CA", Side{Context: "stale", URL: srv.URL(), Creds: goodCreds, TLSCA: certs.CA}, nil},
		{"the context's CA stays when no flag replaces it", Side{Context: "stale", URL: srv.URL(), Creds: goodCreds}, ErrTLS},
		{"the context's credentials stay when no flag replaces them", Side{Context: "stale", URL: srv.URL(), TLSCA: certs.CA}, ErrAuth},
		{"an unknown context", Side{Context: "nope"}, ErrBadConfig},
		// The context's domain or prefix is where the API requests go,
		// never the server's own JetStream: this server has neither.
		{"a context with a JetStream domain", Side{Context: "domain"}, ErrNoJetStream},
		{"a context with a JetStream API prefix", Side{Context: "prefix"}, ErrNoJetStream},
		{"--nats-domain over the context's", Side{Context: "good", Domain: "elsewhere"}, ErrNoJetStream},
		{"a domain that is not one word", Side{Context: "good", Domain: "a.b"}, ErrBadConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.side.Name = "JetStream"
			nc, _, err := JetStream(context.Background(), tt.side, "conn-test")
			if err == nil {
				defer nc.Close()
			}
			if tt.want == nil && err != nil {
				t.Fatalf("connect: %v", err)
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func writeContext(t *testing.T, xdg, name string, fields map[string]string) {
	t.Helper()
	if err := embedded.WriteNATSContext(xdg, name, fields); err != nil {
		t.Fatal(err)
	}
}
