package main

import (
	"testing"

	"github.com/spf13/pflag"
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
