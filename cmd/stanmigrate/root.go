package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/stanmigrate/stanmigrate/internal/conn"
	"github.com/stanmigrate/stanmigrate/internal/monitor"
)

// Defaults from the spec.
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
	flags      *pflag.FlagSet
}

func newRootCmd(a *app) *cobra.Command {
	g := &globalOptions{stan: conn.Side{Name: "STAN"}, nats: conn.Side{Name: "JetStream"}}
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

Connection flags read STAN_URL, STAN_CLUSTER, STAN_MONITOR and NATS_URL from
the environment when not given (a flag wins).

` + exitCodesHelp,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return g.resolve(cmd.Flags())
		},
	}
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	g.addFlags(root.PersistentFlags())
	root.AddCommand(newPlanCmd(a, g), newMigrateCmd(a, g), newVerifyCmd(a, g), newStatusCmd(a, g), newDemoCmd(a))
	return root
}

func (g *globalOptions) addFlags(pf *pflag.FlagSet) {
	pf.StringVar(&g.stan.URL, "stan-url", defaultSTANURL, "STAN server URL (env STAN_URL)")
	pf.StringVar(&g.cluster, "cluster", defaultCluster, "STAN cluster id (env STAN_CLUSTER)")
	pf.StringVar(&g.monitorURL, "stan-monitor", defaultMonitor, "STAN monitoring URL (env STAN_MONITOR)")
	pf.BoolVar(&g.noMonitor, "no-monitor", false, "STAN runs without monitoring: list channels and durables in the plan by hand")
	pf.StringVar(&g.nats.URL, "nats-url", defaultNATSURL, "JetStream server URL (env NATS_URL)")
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
	pick := func(flag, env string, dst *string, ctxName string) {
		if flags.Changed(flag) {
			return
		}
		if v := os.Getenv(env); v != "" {
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
	if g.cluster == "" {
		return usageError{fmt.Errorf("--cluster is empty: pass the STAN cluster id")}
	}
	return nil
}

func (g *globalOptions) monitor() *monitor.Client {
	if g.noMonitor || g.monitorURL == "" {
		return nil
	}
	return monitor.New(g.monitorURL, nil)
}
