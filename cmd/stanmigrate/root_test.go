package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/stanmigrate/stanmigrate/internal/conn"
	"github.com/stanmigrate/stanmigrate/plan"
)

// TestConnectionSettingsPrecedence: a flag wins over the environment,
// the environment over the default; a named context supplies the URL only
// when neither flag nor environment did.
func TestConnectionSettingsPrecedence(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		stan    string
		nats    string
		cluster string
		monitor string
	}{
		{name: "defaults", stan: defaultSTANURL, nats: defaultNATSURL, cluster: defaultCluster, monitor: defaultMonitor},
		{name: "environment", env: map[string]string{"STAN_URL": "nats://s:1", "NATS_URL": "nats://j:2", "STAN_CLUSTER": "prod", "STAN_MONITOR": "http://m:3"},
			stan: "nats://s:1", nats: "nats://j:2", cluster: "prod", monitor: "http://m:3"},
		{name: "flag wins", args: []string{"--stan-url", "nats://flag:1", "--cluster", "flagged"},
			env:  map[string]string{"STAN_URL": "nats://s:1", "STAN_CLUSTER": "prod"},
			stan: "nats://flag:1", nats: defaultNATSURL, cluster: "flagged", monitor: defaultMonitor},
		{name: "context supplies the URL", args: []string{"--nats-context", "prod-js"},
			stan: defaultSTANURL, nats: "", cluster: defaultCluster, monitor: defaultMonitor},
		{name: "environment wins over context", args: []string{"--nats-context", "prod-js"}, env: map[string]string{"NATS_URL": "nats://j:2"},
			stan: defaultSTANURL, nats: "nats://j:2", cluster: defaultCluster, monitor: defaultMonitor},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := &globalOptions{env: tt.env}
			fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
			g.addFlags(fs)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			if err := g.resolve(fs); err != nil {
				t.Fatal(err)
			}
			if g.stan.URL != tt.stan || g.nats.URL != tt.nats || g.cluster != tt.cluster || g.monitorURL != tt.monitor {
				t.Fatalf("got stan %q nats %q cluster %q monitor %q", g.stan.URL, g.nats.URL, g.cluster, g.monitorURL)
			}
		})
	}
}

// TestJetStreamDomainPrecedence: --nats-domain wins over NATS_DOMAIN, and
// either over the plan's recorded domain or API prefix, which applies
// when neither is given; a domain that is not one word is refused.
func TestJetStreamDomainPrecedence(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		env        string
		plan       plan.Target
		domain     string
		prefix     string
		invalid    bool
		usageError bool
	}{
		{name: "none"},
		{name: "environment", env: "leaf", domain: "leaf"},
		{name: "flag wins", args: []string{"--nats-domain", "hub"}, env: "leaf", domain: "hub"},
		{name: "the plan's", plan: plan.Target{Domain: "leaf"}, domain: "leaf"},
		{name: "the plan's prefix", plan: plan.Target{APIPrefix: "JS.acc.API"}, prefix: "JS.acc.API"},
		{name: "environment wins over the plan", env: "edge", plan: plan.Target{Domain: "leaf"}, domain: "edge"},
		{name: "flag wins over the plan's prefix", args: []string{"--nats-domain", "hub"}, plan: plan.Target{APIPrefix: "JS.acc.API"}, domain: "hub"},
		{name: "a plan's bad domain", plan: plan.Target{Domain: "a b"}, invalid: true},
		{name: "a bad flag", args: []string{"--nats-domain", "a.b"}, usageError: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The environment is read once, when the app is made.
			g := &globalOptions{nats: conn.Side{Name: "JetStream"}, env: environment{"NATS_DOMAIN": tt.env}}
			fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
			g.addFlags(fs)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			err := g.resolve(fs)
			if tt.usageError {
				if !errors.As(err, new(usageError)) || !strings.Contains(err.Error(), "--nats-domain") {
					t.Fatalf("got %v, want a usage error naming --nats-domain", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			err = g.applyPlanAuth(&plan.Plan{Target: tt.plan})
			if tt.invalid {
				if !errors.Is(err, plan.ErrInvalid) {
					t.Fatalf("got %v, want plan.ErrInvalid", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if g.nats.Domain != tt.domain || g.nats.APIPrefix != tt.prefix {
				t.Fatalf("domain %q prefix %q, want %q %q", g.nats.Domain, g.nats.APIPrefix, tt.domain, tt.prefix)
			}
		})
	}
}
