package main

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"regexp"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/stanmigrate/stanmigrate/internal/conn"
	"github.com/stanmigrate/stanmigrate/internal/monitor"
	"github.com/stanmigrate/stanmigrate/internal/urls"
	"github.com/stanmigrate/stanmigrate/plan"
)

// Connection defaults: servers on this machine at the standard ports
// (4222 for clients, 8222 for monitoring), and the cluster id
// nats-streaming-server takes when none is configured.
const (
	defaultSTANURL = "nats://127.0.0.1:4222"
	defaultCluster = "test-cluster"
	defaultMonitor = "http://127.0.0.1:8222"
	defaultNATSURL = "nats://127.0.0.1:4222"
)

// globalOptions are the connection flags every command shares.
type globalOptions struct {
	stan, nats conn.Side
	cluster    string
	monitorURL string
	noMonitor  bool
	// The monitoring endpoint over HTTPS: CA (default: --stan-tls-ca) and
	// an optional client certificate.
	monitorCA, monitorCert, monitorKey string
	monitorHTTP                        *http.Client
	flags                              *pflag.FlagSet
	env                                environment
	// domainGiven: --nats-domain or NATS_DOMAIN named the target's
	// JetStream domain, which then wins over a plan's.
	domainGiven bool
}

// runners replace commands' run functions, so tests can check what the
// flags parse into without running anything.
type runners struct {
	plan    func(context.Context, *planOptions) error
	migrate func(context.Context, *migrateOptions) error
	verify  func(context.Context, *verifyOptions) error
	status  func(context.Context, *statusOptions) error
	stateRm func(context.Context, *stateRmOptions) error
	demo    func(context.Context, *demoOptions) error

	seqAtTime func(context.Context, *seqAtTimeOptions) error

	fixtureLoad    func(context.Context, *fixtureLoadOptions) error
	fixtureCapture func(context.Context, *fixtureCaptureOptions) error
}

func newRootCmd(a *app) *cobra.Command { return newRootCmdWith(a, runners{}) }

func newRootCmdWith(a *app, r runners) *cobra.Command {
	g := &globalOptions{stan: conn.Side{Name: "STAN"}, nats: conn.Side{Name: "JetStream"}, env: a.env}
	root := &cobra.Command{
		Use:   "stanmigrate",
		Short: "Move a NATS Streaming (STAN) deployment into NATS JetStream",
		Long: `stanmigrate moves every STAN channel into a JetStream stream with the same
sequences, every durable subscription into a consumer at the position it had,
and proves the result identical.

  stanmigrate plan      discover and map; writes plan.yaml, changes nothing
  stanmigrate migrate   execute the plan (resumable)
  stanmigrate verify    compare every channel with its stream
  stanmigrate demo      the whole job on embedded servers
  stanmigrate seq-at-time  the stream sequence at an original STAN time

Connection flags read STAN_URL, STAN_CLUSTER, STAN_MONITOR, NATS_URL and
NATS_DOMAIN from the environment when not given (a flag wins). Each side is secured on its own
(--stan-… / --nats-…): user and password, token, NKey seed file, credentials
file, TLS CA, client certificate and key, or a saved NATS CLI context; a plan
file's source.auth / target.auth references apply when no such flag is given.

` + exitCodesHelp,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          noArgs,
		RunE:          func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return g.resolve(cmd.Flags())
		},
	}
	root.SetOut(a.io.Out)
	root.SetErr(a.io.Err)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	g.addFlags(root.PersistentFlags())
	root.AddCommand(
		newPlanCmd(a, g, r.plan),
		newMigrateCmd(a, g, r.migrate),
		newVerifyCmd(a, g, r.verify),
		newStatusCmd(a, g, r.status),
		newStateCmd(a, g, r.stateRm),
		newSeqAtTimeCmd(a, g, r.seqAtTime),
		newDemoCmd(a, r.demo),
		newFixtureCmd(a, g, r),
		newVersionCmd(a),
	)
	bi := readBuildInfo()
	root.Version = bi.Version
	root.SetVersionTemplate(bi.String())
	return root
}

func (g *globalOptions) addFlags(pf *pflag.FlagSet) {
	pf.StringVar(&g.stan.URL, "stan-url", defaultSTANURL, "STAN server URL (env STAN_URL)")
	pf.StringVar(&g.cluster, "cluster", defaultCluster, "STAN cluster id (env STAN_CLUSTER)")
	pf.StringVar(&g.monitorURL, "stan-monitor", defaultMonitor, "STAN monitoring URL (env STAN_MONITOR); for clustered or FT STAN, every server's, comma separated: the one that leads is read")
	pf.StringVar(&g.monitorCA, "stan-monitor-ca", "", "CA certificate of an https:// monitoring endpoint (default: --stan-tls-ca)")
	pf.StringVar(&g.monitorCert, "stan-monitor-cert", "", "client certificate for the monitoring endpoint (behind a proxy that asks for one)")
	pf.StringVar(&g.monitorKey, "stan-monitor-key", "", "key of --stan-monitor-cert")
	pf.BoolVar(&g.noMonitor, "no-monitor", false, "STAN runs without monitoring: list channels and durables in the plan by hand")
	pf.StringVar(&g.nats.URL, "nats-url", defaultNATSURL, "JetStream server URL (env NATS_URL)")
	pf.StringVar(&g.nats.Domain, "nats-domain", "", "JetStream domain to migrate into, reached through the --nats-url server (a leaf node's or hub's; env NATS_DOMAIN; default: the plan's, else the context's jetstream_domain or jetstream_api_prefix, else the server's own JetStream)")
	addSideFlags(pf, "stan", &g.stan)
	addSideFlags(pf, "nats", &g.nats)
}

func addSideFlags(pf *pflag.FlagSet, side string, s *conn.Side) {
	pf.StringVar(&s.Context, side+"-context", "", "saved NATS CLI context for the "+side+" side (its URL, credentials and TLS; flags override)")
	pf.StringVar(&s.Creds, side+"-creds", "", "credentials file (JWT + seed)")
	pf.StringVar(&s.NKey, side+"-nkey", "", "NKey seed file")
	pf.StringVar(&s.User, side+"-user", "", "user name")
	pf.StringVar(&s.Password, side+"-password", "", "password (prefer a context or creds file: flags show in ps)")
	pf.StringVar(&s.Token, side+"-token", "", "authentication token")
	pf.StringVar(&s.TLSCert, side+"-tls-cert", "", "client certificate (mutual TLS)")
	pf.StringVar(&s.TLSKey, side+"-tls-key", "", "client certificate key")
	pf.StringVar(&s.TLSCA, side+"-tls-ca", "", "CA certificate to trust")
}

// resolve applies environment variables under the flags, and lets a named
// context supply the URL when neither flag nor environment did.
func (g *globalOptions) resolve(flags *pflag.FlagSet) error {
	g.flags = flags
	pick := func(flag, env string, dst *string, ctxName string) {
		if flags.Changed(flag) {
			return
		}
		if v := g.env[env]; v != "" {
			*dst = v
			return
		}
		if ctxName != "" {
			*dst = ""
		}
	}
	pick("stan-url", "STAN_URL", &g.stan.URL, g.stan.Context)
	pick("cluster", "STAN_CLUSTER", &g.cluster, "")
	pick("stan-monitor", "STAN_MONITOR", &g.monitorURL, "")
	pick("nats-url", "NATS_URL", &g.nats.URL, g.nats.Context)
	pick("nats-domain", "NATS_DOMAIN", &g.nats.Domain, "")
	g.domainGiven = g.nats.Domain != ""
	if g.domainGiven {
		if _, err := g.nats.JetStreamAPI(); err != nil {
			return usageError{err}
		}
	}
	if g.cluster == "" {
		return usageError{fmt.Errorf("--cluster is empty: pass the STAN cluster id")}
	}
	return g.resolveMonitorTLS()
}

// validate checks the connection flags the commands that connect use: the
// URLs' grammar, so that a typo is refused as one (exit 2, naming the
// flag) instead of failing as an unreachable server.
func (g *globalOptions) validate() error {
	natsSchemes := []string{"nats", "tls", "ws", "wss"}
	for _, u := range []struct {
		flag, env, what, value, example string
		schemes                         []string
	}{
		{"stan-url", "STAN_URL", "STAN server URL", g.stan.URL, "nats://127.0.0.1:4222", natsSchemes},
		{"nats-url", "NATS_URL", "JetStream server URL", g.nats.URL, "nats://127.0.0.1:4222", natsSchemes},
		{"stan-monitor", "STAN_MONITOR", "STAN monitoring URL", g.monitorURL, "http://127.0.0.1:8222", []string{"http", "https"}},
	} {
		if u.value == "" || (u.flag == "stan-monitor" && g.noMonitor) {
			continue // a context's URL, or no monitoring
		}
		if err := urls.CheckList(u.value, u.schemes...); err != nil {
			from := ""
			if (g.flags == nil || !g.flags.Changed(u.flag)) && g.env[u.env] != "" {
				from = " (from " + u.env + ")"
			}
			return usageError{fmt.Errorf("--%s%s: %s: %w (for example %s, several separated by commas)", u.flag, from, u.what, err, u.example)}
		}
	}
	return nil
}

// resolveMonitorTLS prepares the HTTP client for an https:// monitoring
// endpoint: its CA defaults to the STAN side's (one server, one
// certificate, in the usual setup).
func (g *globalOptions) resolveMonitorTLS() error {
	ca := g.monitorCA
	if ca == "" {
		ca = g.stan.TLSCA
	}
	if ca == "" && g.monitorCert == "" && g.monitorKey == "" {
		g.monitorHTTP = nil
		return nil
	}
	hc, err := monitor.HTTPClient(ca, g.monitorCert, g.monitorKey)
	if err != nil {
		return fmt.Errorf("STAN monitoring TLS settings (--stan-monitor-ca, --stan-monitor-cert, --stan-monitor-key): %w: %w", err, conn.ErrBadConfig)
	}
	g.monitorHTTP = hc
	return nil
}

// monitor reads STAN monitoring: one endpoint, or, when --stan-monitor
// lists several (a clustered STAN's nodes, an FT pair), the one whose
// server leads. nil without monitoring.
func (g *globalOptions) monitor() monitor.Reader {
	if g.noMonitor || g.monitorURL == "" {
		return nil
	}
	return monitor.Open(g.monitorURL, g.monitorHTTP)
}

// securityFlags are a side's flags that say how to authenticate and
// encrypt; giving any of them replaces the plan's auth block for the side.
func securityFlags(side string) []string {
	names := []string{"context", "creds", "nkey", "user", "password", "token", "tls-cert", "tls-key", "tls-ca"}
	if side == "stan" {
		names = append(names, "monitor-ca", "monitor-cert", "monitor-key")
	}
	for i, n := range names {
		names[i] = side + "-" + n
	}
	return names
}

// authRefs is what a plan records about a side's security: references
// (absolute file paths, a context name), never a user, password or token.
func authRefs(s conn.Side, monitorCA string) *plan.Auth {
	a := plan.Auth{Context: s.Context, Creds: absPath(s.Creds), NKey: absPath(s.NKey),
		TLSCert: absPath(s.TLSCert), TLSKey: absPath(s.TLSKey), TLSCA: absPath(s.TLSCA), MonitorCA: absPath(monitorCA)}
	if a == (plan.Auth{}) {
		return nil
	}
	return &a
}

func absPath(p string) string {
	if p == "" {
		return ""
	}
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// envName is what an environment variable name looks like; anything else
// in an *_env field is likely a secret pasted in by mistake.
var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// applyPlanAuth fills each side's security settings from the plan's auth
// block when no security flag was given for that side (flags win, as a
// whole: a plan's credentials never mix with a flag's).
func (g *globalOptions) applyPlanAuth(p *plan.Plan) error {
	if err := g.applyAuth("stan", "STAN_URL", "source.auth", &g.stan, p.Source.Auth); err != nil {
		return err
	}
	if err := g.applyAuth("nats", "NATS_URL", "target.auth", &g.nats, p.Target.Auth); err != nil {
		return err
	}
	if !g.domainGiven {
		// The plan was made for this JetStream: domain and prefix are
		// where, not secrets.
		g.nats.Domain, g.nats.APIPrefix = p.Target.Domain, p.Target.APIPrefix
		if _, err := g.nats.JetStreamAPI(); err != nil {
			return fmt.Errorf("plan target.domain / target.api_prefix: %w: %w", err, plan.ErrInvalid)
		}
	}
	return g.resolveMonitorTLS()
}

func (g *globalOptions) applyAuth(side, urlEnv, where string, s *conn.Side, a *plan.Auth) error {
	if a == nil {
		return nil
	}
	for _, f := range securityFlags(side) {
		if g.flags != nil && g.flags.Changed(f) {
			return nil
		}
	}
	if side == "nats" && a.MonitorCA != "" {
		return fmt.Errorf("plan %s.monitor_ca: only the source has a monitoring endpoint: move it to source.auth: %w", where, plan.ErrInvalid)
	}
	fromEnv := func(field, name string, dst *string) error {
		if name == "" {
			return nil
		}
		// Never quote the field's value: it may be a secret pasted in the
		// wrong place.
		if !envName.MatchString(name) {
			return fmt.Errorf("plan %s.%s must name an environment variable (letters, digits, _), never hold the value itself: %w", where, field, plan.ErrInvalid)
		}
		v := g.env[name]
		if v == "" {
			return fmt.Errorf("plan %s.%s: the environment variable it names is not set: export it, or pass --%s-… flags: %w", where, field, side, conn.ErrBadConfig)
		}
		*dst = v
		return nil
	}
	*s = conn.Side{Name: s.Name, URL: s.URL, Context: a.Context, Creds: a.Creds, NKey: a.NKey,
		TLSCert: a.TLSCert, TLSKey: a.TLSKey, TLSCA: a.TLSCA, Domain: s.Domain, APIPrefix: s.APIPrefix}
	for _, e := range []struct {
		field, name string
		dst         *string
	}{{"user_env", a.UserEnv, &s.User}, {"password_env", a.PasswordEnv, &s.Password}, {"token_env", a.TokenEnv, &s.Token}} {
		if err := fromEnv(e.field, e.name, e.dst); err != nil {
			return err
		}
	}
	if a.Context != "" && (g.flags == nil || !g.flags.Changed(side+"-url")) && g.env[urlEnv] == "" {
		s.URL = "" // the context's URL
	}
	if side == "stan" {
		g.monitorCA = a.MonitorCA
	}
	return nil
}
