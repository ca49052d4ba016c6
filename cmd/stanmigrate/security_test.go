package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	natsd "github.com/nats-io/nats-server/v2/server"
	stand "github.com/nats-io/nats-streaming-server/server"
	"github.com/nats-io/stan.go"

	"github.com/stanmigrate/stanmigrate/internal/conn"
	"github.com/stanmigrate/stanmigrate/internal/testkit/embedded"
	"github.com/stanmigrate/stanmigrate/internal/testkit/testcerts"
)

// secureServers is a STAN source and a JetStream target, each secured on
// its own, with a one-channel fixture seeded through the source's security.
type secureServers struct {
	stan    *embedded.STAN
	js      *embedded.JetStream
	monitor string
}

// secureSide is how one server is secured and how a client gets in.
type secureSide struct {
	server   embedded.Security
	internal embedded.Client // STAN only: its own connections
	flags    []string        // what the user passes
	client   conn.Side       // the same settings, for seeding
}

const (
	secChannel  = "orders"
	secMessages = 20
)

func startSecure(t *testing.T, src, dst secureSide) *secureServers {
	t.Helper()
	stanHook, err := src.server.ConfigureSTAN(src.internal)
	if err != nil {
		t.Fatal(err)
	}
	st, err := embedded.StartSTAN(embedded.STANConfig{Configure: stanHook})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Stop)
	jsHook, err := dst.server.ConfigureJetStream()
	if err != nil {
		t.Fatal(err)
	}
	js, err := embedded.StartJetStream(embedded.JetStreamConfig{Dir: t.TempDir(), Configure: jsHook})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(js.Stop)
	s := &secureServers{stan: st, js: js, monitor: st.MonitorURL()}
	side := src.client
	side.Name, side.URL = "STAN", st.URL()
	seedSecure(t, side, st.ClusterID())
	return s
}

// seedSecure creates an offline durable, then publishes the messages: the
// durable's position (start at 1) is exact from monitoring.
func seedSecure(t *testing.T, side conn.Side, cluster string) {
	t.Helper()
	ctx := context.Background()
	owner, err := conn.ConnectSTAN(ctx, side, cluster, "app", nil)
	if err != nil {
		t.Fatalf("seed: %v", err)
	}
	if _, err := owner.SC.Subscribe(secChannel, func(*stan.Msg) {}, stan.DurableName("billing"), stan.SetManualAckMode()); err != nil {
		t.Fatalf("seed: %v", err)
	}
	owner.Close() // Close, not Unsubscribe: the durable stays
	pub, err := conn.ConnectSTAN(ctx, side, cluster, "seeder", nil)
	if err != nil {
		t.Fatalf("seed: %v", err)
	}
	defer pub.Close()
	for i := 1; i <= secMessages; i++ {
		if err := pub.SC.Publish(secChannel, fmt.Appendf(nil, "order %d", i)); err != nil {
			t.Fatalf("seed: %v", err)
		}
	}
}

// env points the binary at the servers; URLs come from contexts when the
// flags name one, so the environment then leaves them unset.
func (s *secureServers) env(src, dst secureSide, xdg string) []string {
	e := []string{
		"STAN_CLUSTER=" + s.stan.ClusterID(),
		"STAN_MONITOR=" + s.monitor,
		"STAN_URL=" + s.stan.URL(),
		"NATS_URL=" + s.js.URL(),
		"XDG_CONFIG_HOME=" + xdg,
	}
	if slices.Contains(src.flags, "--stan-context") {
		e[2] = "STAN_URL="
	}
	if slices.Contains(dst.flags, "--nats-context") {
		e[3] = "NATS_URL="
	}
	return e
}

// secrets gathers what must never be printed or written: the values given
// on flags, and the contents of key, seed and credentials files.
type secrets []string

func (ss *secrets) add(v ...string) { *ss = append(*ss, v...) }

// file adds the secret parts of a file: PEM key bodies, NKey seeds, JWTs.
func (ss *secrets) file(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if len(line) >= 40 && !strings.HasPrefix(line, "-----") && !strings.HasPrefix(line, "*") {
			ss.add(line)
		}
	}
}

// assertNowhere fails when any secret appears in the outputs or in any file
// under dir, and when a file there is readable by others.
func (ss secrets) assertNowhere(t *testing.T, dir string, outputs ...string) {
	t.Helper()
	for _, s := range ss {
		for i, o := range outputs {
			if strings.Contains(o, s) {
				t.Errorf("output %d contains the secret %q:\n%s", i, s, o)
			}
		}
	}
	files := 0
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		files++
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, s := range ss {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s contains the secret %q", path, s)
			}
		}
		if fi, _ := d.Info(); fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s is readable by others: %v", path, fi.Mode().Perm())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 2 {
		t.Errorf("only %d file(s) written under %s: expected the plan and checkpoints", files, dir)
	}
}

func writeNATSContext(t *testing.T, xdg, name string, fields map[string]string) {
	t.Helper()
	if err := embedded.WriteNATSContext(xdg, name, fields); err != nil {
		t.Fatal(err)
	}
}

// TestSecurityMigrateAndVerifyWithEachMethodOnEachSide runs plan, migrate
// and verify through the binary against a STAN source and a JetStream
// target that both demand the same method, each with its own secrets (so a
// side using the other's settings would fail), then checks the streams
// hold the channel and that no secret appears in any output or file.
func TestSecurityMigrateAndVerifyWithEachMethodOnEachSide(t *testing.T) {
	root := t.TempDir()
	certs, err := testcerts.Generate(filepath.Join(root, "certs"))
	if err != nil {
		t.Fatal(err)
	}
	file := func(name string) string { return filepath.Join(root, name) }
	nkey := func(name string) string {
		pub, err := embedded.WriteNKey(file(name))
		if err != nil {
			t.Fatal(err)
		}
		return pub
	}
	tlsServer := embedded.Security{TLSCert: certs.ServerCert, TLSKey: certs.ServerKey}
	mtlsServer := embedded.Security{TLSCert: certs.ServerCert, TLSKey: certs.ServerKey, TLSCA: certs.CA, VerifyClients: true}

	type method struct {
		name     string
		src, dst secureSide
		secrets  secrets
	}
	var methods []method

	// User and password.
	{
		var ss secrets
		ss.add("stan-pw-Qx81", "stan-internal-pw-Qx81", "js-pw-Lm44")
		methods = append(methods, method{name: "user and password", secrets: ss,
			src: secureSide{
				server: embedded.Security{Users: []*natsd.User{
					{Username: "stan", Password: "stan-internal-pw-Qx81"}, {Username: "migrator", Password: "stan-pw-Qx81"}}},
				internal: embedded.Client{User: "stan", Password: "stan-internal-pw-Qx81"},
				flags:    []string{"--stan-user", "migrator", "--stan-password", "stan-pw-Qx81"},
				client:   conn.Side{User: "migrator", Password: "stan-pw-Qx81"},
			},
			dst: secureSide{
				server: embedded.Security{Users: []*natsd.User{{Username: "loader", Password: "js-pw-Lm44"}}},
				flags:  []string{"--nats-user", "loader", "--nats-password", "js-pw-Lm44"},
				client: conn.Side{User: "loader", Password: "js-pw-Lm44"},
			},
		})
	}
	// Token.
	{
		var ss secrets
		ss.add("stan-token-Zr93", "js-token-Pv27")
		methods = append(methods, method{name: "token", secrets: ss,
			src: secureSide{
				server:   embedded.Security{Token: "stan-token-Zr93"},
				internal: embedded.Client{Token: "stan-token-Zr93"},
				flags:    []string{"--stan-token", "stan-token-Zr93"},
				client:   conn.Side{Token: "stan-token-Zr93"},
			},
			dst: secureSide{
				server: embedded.Security{Token: "js-token-Pv27"},
				flags:  []string{"--nats-token", "js-token-Pv27"},
				client: conn.Side{Token: "js-token-Pv27"},
			},
		})
	}
	// NKey seed files.
	{
		internalPub, srcPub, dstPub := nkey("stan-internal.nk"), nkey("stan.nk"), nkey("js.nk")
		var ss secrets
		for _, f := range []string{"stan-internal.nk", "stan.nk", "js.nk"} {
			ss.file(t, file(f))
		}
		methods = append(methods, method{name: "nkey", secrets: ss,
			src: secureSide{
				server:   embedded.Security{NKeys: []*natsd.NkeyUser{{Nkey: internalPub}, {Nkey: srcPub}}},
				internal: embedded.Client{NKeySeedFile: file("stan-internal.nk")},
				flags:    []string{"--stan-nkey", file("stan.nk")},
				client:   conn.Side{NKey: file("stan.nk")},
			},
			dst: secureSide{
				server: embedded.Security{NKeys: []*natsd.NkeyUser{{Nkey: dstPub}}},
				flags:  []string{"--nats-nkey", file("js.nk")},
				client: conn.Side{NKey: file("js.nk")},
			},
		})
	}
	// Credentials files (decentralised auth, one operator per side).
	{
		srcOp, err := embedded.NewOperator()
		if err != nil {
			t.Fatal(err)
		}
		srcAcc, err := srcOp.NewAccount("STAN", false)
		if err != nil {
			t.Fatal(err)
		}
		dstOp, err := embedded.NewOperator()
		if err != nil {
			t.Fatal(err)
		}
		dstAcc, err := dstOp.NewAccount("MIGRATED", true)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			acc  *embedded.Account
			name string
		}{{srcAcc, "stan-internal"}, {srcAcc, "stan"}, {dstAcc, "js"}} {
			if err := c.acc.WriteCreds(file(c.name+".creds"), c.name, nil); err != nil {
				t.Fatal(err)
			}
		}
		var ss secrets
		for _, f := range []string{"stan-internal.creds", "stan.creds", "js.creds"} {
			ss.file(t, file(f))
		}
		methods = append(methods, method{name: "credentials file", secrets: ss,
			src: secureSide{
				server:   embedded.Security{Operator: srcOp},
				internal: embedded.Client{Creds: file("stan-internal.creds")},
				flags:    []string{"--stan-creds", file("stan.creds")},
				client:   conn.Side{Creds: file("stan.creds")},
			},
			dst: secureSide{
				server: embedded.Security{Operator: dstOp},
				flags:  []string{"--nats-creds", file("js.creds")},
				client: conn.Side{Creds: file("js.creds")},
			},
		})
	}
	// TLS with a custom CA (monitoring over HTTPS too, trusting the same CA).
	methods = append(methods, method{name: "TLS with a custom CA",
		src: secureSide{
			server:   tlsServer,
			internal: embedded.Client{CA: certs.CA},
			flags:    []string{"--stan-tls-ca", certs.CA},
			client:   conn.Side{TLSCA: certs.CA},
		},
		dst: secureSide{server: tlsServer, flags: []string{"--nats-tls-ca", certs.CA}, client: conn.Side{TLSCA: certs.CA}},
	})
	// Mutual TLS on both sides.
	{
		var ss secrets
		ss.file(t, certs.ClientKey)
		methods = append(methods, method{name: "mutual TLS", secrets: ss,
			src: secureSide{
				server:   mtlsServer,
				internal: embedded.Client{CA: certs.CA, Cert: certs.ClientCert, Key: certs.ClientKey},
				flags:    []string{"--stan-tls-ca", certs.CA, "--stan-tls-cert", certs.ClientCert, "--stan-tls-key", certs.ClientKey},
				client:   conn.Side{TLSCA: certs.CA, TLSCert: certs.ClientCert, TLSKey: certs.ClientKey},
			},
			dst: secureSide{server: mtlsServer,
				flags:  []string{"--nats-tls-ca", certs.CA, "--nats-tls-cert", certs.ClientCert, "--nats-tls-key", certs.ClientKey},
				client: conn.Side{TLSCA: certs.CA, TLSCert: certs.ClientCert, TLSKey: certs.ClientKey}},
		})
	}
	// Saved NATS CLI contexts: URL, credentials and CA from the context
	// (password on the STAN side, credentials file on the JetStream side).
	{
		op, err := embedded.NewOperator()
		if err != nil {
			t.Fatal(err)
		}
		if err := op.AccountCreds(file("ctx-js.creds"), "MIGRATED", "ctx-js", true); err != nil {
			t.Fatal(err)
		}
		var ss secrets
		ss.add("ctx-stan-pw-Wd52")
		ss.file(t, file("ctx-js.creds"))
		src := tlsServer
		src.Users = []*natsd.User{{Username: "stan", Password: "ctx-stan-pw-Wd52"}}
		dst := tlsServer
		dst.Operator = op
		methods = append(methods, method{name: "NATS CLI context", secrets: ss,
			src: secureSide{
				server:   src,
				internal: embedded.Client{User: "stan", Password: "ctx-stan-pw-Wd52", CA: certs.CA},
				flags:    []string{"--stan-context", "source", "--stan-monitor-ca", certs.CA},
				client:   conn.Side{User: "stan", Password: "ctx-stan-pw-Wd52", TLSCA: certs.CA},
			},
			dst: secureSide{server: dst, flags: []string{"--nats-context", "target"},
				client: conn.Side{Creds: file("ctx-js.creds"), TLSCA: certs.CA}},
		})
	}

	for _, m := range methods {
		t.Run(m.name, func(t *testing.T) {
			srv := startSecure(t, m.src, m.dst)
			xdg := t.TempDir()
			writeNATSContext(t, xdg, "source", map[string]string{"url": srv.stan.URL(), "user": "stan", "password": "ctx-stan-pw-Wd52", "ca": certs.CA})
			writeNATSContext(t, xdg, "target", map[string]string{"url": srv.js.URL(), "creds": file("ctx-js.creds"), "ca": certs.CA})
			env := srv.env(m.src, m.dst, xdg)
			work := t.TempDir()
			planFile := filepath.Join(work, "plan.yaml")
			flags := append(append([]string{}, m.src.flags...), m.dst.flags...)
			var outputs []string
			for _, args := range [][]string{
				{"plan", "-o", planFile},
				{"plan", "-o", "-", "--format", "json"},
				{"migrate", "--plan", planFile, "--json"},
				{"verify", "--plan", planFile, "--json"},
				{"verify", "--plan", planFile},
			} {
				r := run(t, env, append(args, flags...)...)
				if r.code != 0 {
					t.Fatalf("%v: exit %d\n%s%s", args, r.code, r.stdout, r.stderr)
				}
				outputs = append(outputs, r.stdout, r.stderr)
			}
			if !strings.Contains(outputs[6], `"ok": true`) {
				t.Errorf("verify --json does not report ok:\n%s", outputs[6])
			}
			checkStream(t, m.dst, srv.js.URL())
			// Each side really demands its settings: without them (or with
			// only the other side's) the same commands fail with exit 2.
			open := srv.env(secureSide{}, secureSide{}, xdg)
			for _, c := range []struct {
				side string
				args []string
			}{
				{"JetStream server", append([]string{"plan", "-o", "-"}, m.src.flags...)},
				// Without --plan: the plan file records the source's
				// references, which would stand in for the flags.
				{"STAN ", append([]string{"verify"}, m.dst.flags...)},
			} {
				r := run(t, open, c.args...)
				if r.code != 2 || !strings.Contains(r.stderr, c.side) {
					t.Errorf("%v without the %s settings: exit %d, want 2 naming the %s\n%s%s", c.args, c.side, r.code, c.side, r.stdout, r.stderr)
				}
				outputs = append(outputs, r.stdout, r.stderr)
			}
			m.secrets.assertNowhere(t, work, outputs...)
		})
	}
}

// checkStream reads the target as the user would with the same settings:
// the stream holds every message of the channel with its own sequences.
func checkStream(t *testing.T, dst secureSide, url string) {
	t.Helper()
	side := dst.client
	side.Name, side.URL = "JetStream", url
	nc, js, err := conn.JetStream(context.Background(), side, "check")
	if err != nil {
		t.Fatalf("connect to the target to check it: %v", err)
	}
	defer nc.Close()
	s, err := js.Stream(context.Background(), secChannel)
	if err != nil {
		t.Fatalf("stream %q: %v", secChannel, err)
	}
	st := s.CachedInfo().State
	if st.Msgs != secMessages || st.FirstSeq != 1 || st.LastSeq != secMessages {
		t.Errorf("stream holds %d messages %d..%d, want %d messages 1..%d", st.Msgs, st.FirstSeq, st.LastSeq, secMessages, secMessages)
	}
}

// TestSecurityFailuresExitTwoWithTheirOwnMessage breaks one thing at a
// time against secured servers and runs the binary as an operator would:
// each failure exits 2 with a message of its own class (and no other's)
// that names the side, the server and what to check, and quotes no secret.
func TestSecurityFailuresExitTwoWithTheirOwnMessage(t *testing.T) {
	root := t.TempDir()
	certs, err := testcerts.Generate(filepath.Join(root, "certs"))
	if err != nil {
		t.Fatal(err)
	}
	const secret = "Sekr1t-Ob7"
	tlsServer := embedded.Security{TLSCert: certs.ServerCert, TLSKey: certs.ServerKey}

	src := tlsServer
	src.Users = []*natsd.User{
		{Username: "stan", Password: "stan-" + secret},
		{Username: "reader", Password: "reader-" + secret},
		{Username: "nopub", Password: "nopub-" + secret, Permissions: &natsd.Permissions{
			Publish: &natsd.SubjectPermission{Deny: []string{"_STAN.>"}}}},
	}
	dst := tlsServer
	dst.Users = []*natsd.User{
		{Username: "loader", Password: "loader-" + secret},
		{Username: "nojs", Password: "nojs-" + secret, Permissions: &natsd.Permissions{
			Publish: &natsd.SubjectPermission{Deny: []string{"$JS.API.>"}}}},
		{Username: "nochan", Password: "nochan-" + secret, Permissions: &natsd.Permissions{
			Publish: &natsd.SubjectPermission{Deny: []string{secChannel}}}},
	}
	srv := startSecure(t,
		secureSide{server: src, internal: embedded.Client{User: "stan", Password: "stan-" + secret, CA: certs.CA},
			client: conn.Side{User: "reader", Password: "reader-" + secret, TLSCA: certs.CA}},
		secureSide{server: dst})

	startJS := func(sec embedded.Security) *embedded.JetStream {
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
	expired := startJS(embedded.Security{TLSCert: certs.ExpiredCert, TLSKey: certs.ExpiredKey})
	mutual := startJS(embedded.Security{TLSCert: certs.ServerCert, TLSKey: certs.ServerKey, TLSCA: certs.CA, VerifyClients: true})
	op, err := embedded.NewOperator()
	if err != nil {
		t.Fatal(err)
	}
	noJSCreds := filepath.Join(root, "nojs.creds")
	if err := op.AccountCreds(noJSCreds, "NOJS", "nojs", false); err != nil {
		t.Fatal(err)
	}
	operator := startJS(embedded.Security{Operator: op, TLSCert: certs.ServerCert, TLSKey: certs.ServerKey})

	good := []string{
		"--stan-user", "reader", "--stan-password", "reader-" + secret, "--stan-tls-ca", certs.CA,
		"--nats-user", "loader", "--nats-password", "loader-" + secret, "--nats-tls-ca", certs.CA,
	}
	hostOf := func(u string) string { return u[strings.Index(u, "://")+3:] }
	const (
		auth    = "authentication failed"
		perm    = "permission denied"
		tlsFail = "TLS handshake failed"
		cluster = "cluster id"
		nojs    = "JetStream is not enabled"
	)
	tests := []struct {
		name  string
		class string
		env   []string // added to the servers' environment
		args  []string // after the good flags: a later flag wins
		wants []string
	}{
		{"JetStream: wrong password", auth, nil, []string{"plan", "-o", "-", "--nats-password", "wrong-" + secret},
			[]string{"JetStream server", hostOf(srv.js.URL()), "--nats-user/--nats-password"}},
		{"STAN: wrong password", auth, nil, []string{"migrate", "--nats-password", "loader-" + secret, "--stan-password", "wrong-" + secret},
			[]string{"STAN server", hostOf(srv.stan.URL()), "--stan-user/--stan-password"}},
		{"JetStream: API denied", perm, nil, []string{"plan", "-o", "-", "--nats-user", "nojs", "--nats-password", "nojs-" + secret},
			[]string{"JetStream server", hostOf(srv.js.URL()), "authorization violation", "$JS.API.>"}},
		// The JetStream API is allowed, so this only shows once migrate
		// publishes: it must stop at once, not retry for minutes.
		{"JetStream: publish on the channel's subject denied", perm, nil,
			[]string{"migrate", "--quiet", "--nats-user", "nochan", "--nats-password", "nochan-" + secret},
			[]string{"JetStream server", hostOf(srv.js.URL()), "authorization violation"}},
		{"STAN: publish denied", perm, nil, []string{"migrate", "--stan-user", "nopub", "--stan-password", "nopub-" + secret},
			[]string{"STAN server", hostOf(srv.stan.URL()), "authorization violation", "_STAN.>"}},
		{"JetStream: expired certificate", tlsFail, []string{"NATS_URL=" + expired.URL()}, []string{"plan", "-o", "-"},
			[]string{"JetStream server", hostOf(expired.URL()), "expired"}},
		{"JetStream: client certificate required", tlsFail, []string{"NATS_URL=" + mutual.URL()}, []string{"plan", "-o", "-"},
			[]string{"JetStream server", hostOf(mutual.URL()), "client certificate", "--nats-tls-cert"}},
		{"STAN: CA that did not sign the server's certificate", tlsFail, nil,
			[]string{"migrate", "--stan-tls-ca", certs.OtherCA, "--stan-monitor-ca", certs.CA},
			[]string{"STAN server", hostOf(srv.stan.URL()), "--stan-tls-ca"}},
		{"STAN monitoring: CA that did not sign its certificate", tlsFail, nil, []string{"plan", "-o", "-", "--stan-monitor-ca", certs.OtherCA},
			[]string{"monitoring " + srv.monitor, "--stan-monitor-ca"}},
		{"wrong cluster id", cluster, []string{"STAN_CLUSTER=prod"}, []string{"plan", "-o", "-"},
			[]string{"STAN monitoring", `"prod"`, "--cluster"}},
		{"JetStream not enabled for the account", nojs, []string{"NATS_URL=" + operator.URL()}, []string{"plan", "-o", "-", "--nats-creds", noJSCreds},
			[]string{"JetStream server", hostOf(operator.URL()), "account"}},
	}
	classes := []string{auth, perm, tlsFail, cluster, nojs}
	var outputs []string
	work := t.TempDir()
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := append(srv.env(secureSide{}, secureSide{}, t.TempDir()), tt.env...)
			// The verb, the good settings, then what breaks them (a later
			// flag wins).
			args := append([]string{tt.args[0]}, append(append([]string{}, good...), tt.args[1:]...)...)
			if tt.args[0] == "migrate" {
				args = append(args, "--state", filepath.Join(work, fmt.Sprint(i)))
			}
			r := run(t, env, args...)
			outputs = append(outputs, r.stdout, r.stderr)
			if r.code != 2 {
				t.Fatalf("exit %d, want 2\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
			}
			for _, w := range append([]string{tt.class}, tt.wants...) {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
				}
			}
			for _, other := range classes {
				if other != tt.class && strings.Contains(r.stderr, other) {
					t.Errorf("a %q failure also says %q:\n%s", tt.class, other, r.stderr)
				}
			}
			if n := strings.Count(strings.TrimSpace(r.stderr), "\n"); n > 0 {
				t.Errorf("want one line, got %d:\n%s", n+1, r.stderr)
			}
		})
	}
	var ss secrets
	ss.add(secret)
	ss.assertNowhere(t, work, outputs...)
}

// TestSecurityPlanRecordsReferencesThatMigrateAndVerifyUse: plan writes
// each side's security as references (paths, never a password), an
// operator adds the names of environment variables for a user and
// password, and migrate and verify then run with no security flag at all.
// A flag for a side replaces the plan's block for that side; a block that
// holds what looks like a secret, or names an unset variable, is refused
// without quoting it.
func TestSecurityPlanRecordsReferencesThatMigrateAndVerifyUse(t *testing.T) {
	root := t.TempDir()
	certs, err := testcerts.Generate(filepath.Join(root, "certs"))
	if err != nil {
		t.Fatal(err)
	}
	const password = "plan-pw-Hk38"
	op, err := embedded.NewOperator()
	if err != nil {
		t.Fatal(err)
	}
	creds := filepath.Join(root, "js.creds")
	if err := op.AccountCreds(creds, "MIGRATED", "js", true); err != nil {
		t.Fatal(err)
	}
	strangerCreds := filepath.Join(root, "stranger.creds")
	if err := embedded.UntrustedCreds(strangerCreds); err != nil {
		t.Fatal(err)
	}
	src := embedded.Security{TLSCert: certs.ServerCert, TLSKey: certs.ServerKey, TLSCA: certs.CA, VerifyClients: true,
		Users: []*natsd.User{{Username: "migrator", Password: password}}}
	mtls := []string{"--stan-tls-ca", certs.CA, "--stan-tls-cert", certs.ClientCert, "--stan-tls-key", certs.ClientKey}
	srv := startSecure(t,
		secureSide{server: src,
			internal: embedded.Client{User: "migrator", Password: password, CA: certs.CA, Cert: certs.ClientCert, Key: certs.ClientKey},
			client:   conn.Side{User: "migrator", Password: password, TLSCA: certs.CA, TLSCert: certs.ClientCert, TLSKey: certs.ClientKey}},
		secureSide{server: embedded.Security{Operator: op, TLSCert: certs.ServerCert, TLSKey: certs.ServerKey}})
	env := srv.env(secureSide{}, secureSide{}, t.TempDir())
	work := t.TempDir()
	planFile := filepath.Join(work, "plan.yaml")

	flags := append(append([]string{}, mtls...), "--stan-user", "migrator", "--stan-password", password,
		"--nats-creds", creds, "--nats-tls-ca", certs.CA)
	r := run(t, env, append([]string{"plan", "-o", planFile}, flags...)...)
	if r.code != 0 {
		t.Fatalf("plan: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	outputs := []string{r.stdout, r.stderr}
	data, err := os.ReadFile(planFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"tls_cert: " + certs.ClientCert, "tls_key: " + certs.ClientKey, "creds: " + creds, "tls_ca: " + certs.CA} {
		if !strings.Contains(string(data), want) {
			t.Errorf("plan lacks the reference %q:\n%s", want, data)
		}
	}
	// The operator names where the STAN user and password live.
	edited := strings.Replace(string(data), "    tls_cert: "+certs.ClientCert,
		"    user_env: SRC_USER\n    password_env: SRC_PASSWORD\n    tls_cert: "+certs.ClientCert, 1)
	if edited == string(data) {
		t.Fatalf("could not find source.auth.tls_cert to edit in:\n%s", data)
	}
	if err := os.WriteFile(planFile, []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	secretEnv := append(append([]string{}, env...), "SRC_USER=migrator", "SRC_PASSWORD="+password)
	for _, args := range [][]string{
		{"migrate", "--plan", planFile},
		{"verify", "--plan", planFile, "--json"},
	} {
		r := run(t, secretEnv, args...)
		if r.code != 0 {
			t.Fatalf("%v with the plan's references only: exit %d\n%s%s", args, r.code, r.stdout, r.stderr)
		}
		outputs = append(outputs, r.stdout, r.stderr)
	}
	checkStream(t, secureSide{client: conn.Side{Creds: creds, TLSCA: certs.CA}}, srv.js.URL())

	pasted := filepath.Join(work, "pasted.yaml")
	if err := os.WriteFile(pasted, []byte(strings.Replace(edited, "password_env: SRC_PASSWORD", "password_env: "+password+"!", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		env   []string
		args  []string
		wants []string
	}{
		{"a flag replaces the plan's block for its side", secretEnv, []string{"verify", "--plan", planFile, "--nats-creds", strangerCreds, "--nats-tls-ca", certs.CA},
			[]string{"JetStream server", "authentication failed"}},
		{"an unset variable", env, []string{"verify", "--plan", planFile},
			[]string{"source.auth.user_env", "not set"}},
		{"a secret pasted where a variable name belongs", secretEnv, []string{"verify", "--plan", pasted},
			[]string{"source.auth.password_env", "must name an environment variable"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := run(t, tt.env, tt.args...)
			outputs = append(outputs, r.stdout, r.stderr)
			if r.code != 2 {
				t.Fatalf("exit %d, want 2\n%s%s", r.code, r.stdout, r.stderr)
			}
			for _, w := range tt.wants {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
				}
			}
		})
	}
	var ss secrets
	ss.add(password)
	ss.file(t, creds)
	ss.file(t, certs.ClientKey)
	// pasted.yaml holds the password on purpose (the operator's mistake).
	os.Remove(pasted)
	ss.assertNowhere(t, work, outputs...)
}

// TestSecuritySourceAndTargetInDifferentAccountsOfOneServer migrates
// between two accounts of the same nats-server: STAN runs in one (its
// embedded server also has JetStream), the streams land in the other.
// Each side's credentials only reach its own account, so the tool must
// keep them apart.
func TestSecuritySourceAndTargetInDifferentAccountsOfOneServer(t *testing.T) {
	root := t.TempDir()
	op, err := embedded.NewOperator()
	if err != nil {
		t.Fatal(err)
	}
	stanAcc, err := op.NewAccount("STAN", false)
	if err != nil {
		t.Fatal(err)
	}
	jsAcc, err := op.NewAccount("STREAMS", true)
	if err != nil {
		t.Fatal(err)
	}
	file := func(name string) string { return filepath.Join(root, name) }
	for _, c := range []struct {
		acc  *embedded.Account
		name string
	}{{stanAcc, "stan-internal"}, {stanAcc, "stan"}, {jsAcc, "js"}} {
		if err := c.acc.WriteCreds(file(c.name+".creds"), c.name, nil); err != nil {
			t.Fatal(err)
		}
	}
	hook, err := embedded.Security{Operator: op}.ConfigureSTAN(embedded.Client{Creds: file("stan-internal.creds")})
	if err != nil {
		t.Fatal(err)
	}
	storeDir := t.TempDir()
	st, err := embedded.StartSTAN(embedded.STANConfig{Configure: func(s *stand.Options, n *natsd.Options) {
		hook(s, n)
		n.JetStream, n.StoreDir = true, storeDir
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Stop)
	seedSecure(t, conn.Side{Name: "STAN", URL: st.URL(), Creds: file("stan.creds")}, st.ClusterID())

	env := []string{"STAN_URL=" + st.URL(), "NATS_URL=" + st.URL(), "STAN_CLUSTER=" + st.ClusterID(), "STAN_MONITOR=" + st.MonitorURL()}
	planFile := filepath.Join(t.TempDir(), "plan.yaml")
	flags := []string{"--stan-creds", file("stan.creds"), "--nats-creds", file("js.creds")}
	for _, args := range [][]string{{"plan", "-o", planFile}, {"migrate", "--plan", planFile}, {"verify", "--plan", planFile}} {
		if r := run(t, env, append(args, flags...)...); r.code != 0 {
			t.Fatalf("%v: exit %d\n%s%s", args, r.code, r.stdout, r.stderr)
		}
	}
	checkStream(t, secureSide{client: conn.Side{Creds: file("js.creds")}}, st.URL())
	// The STAN account has no JetStream: swapping the credentials fails.
	r := run(t, env, "plan", "-o", "-", "--stan-creds", file("stan.creds"), "--nats-creds", file("stan.creds"))
	if r.code != 2 || !strings.Contains(r.stderr, "JetStream is not enabled") {
		t.Errorf("target credentials of the STAN account: exit %d, want 2 saying JetStream is not enabled\n%s", r.code, r.stderr)
	}
}
