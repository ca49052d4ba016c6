package plan_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stanmigrate/stanmigrate/internal/source"
	"github.com/stanmigrate/stanmigrate/plan"
)

// TestPlanExpiry: which channels keep STAN's deadlines by per-message TTL
// follows the target's release line and --expiry, a channel without
// max_age gets no expiry at all, and the findings say which channels
// live longer than on STAN and why.
func TestPlanExpiry(t *testing.T) {
	chans := []source.Channel{
		{Name: "aged", FirstSeq: 1, LastSeq: 3, Msgs: 3, Limits: source.Limits{MaxAge: time.Hour}},
		{Name: "forever", FirstSeq: 1, LastSeq: 3, Msgs: 3},
	}
	for _, tc := range []struct {
		version string
		level   int
		mode    string
		want    string // the aged channel's expiry
		finding string
	}{
		{"2.12.15", 2, "", plan.ExpiryOriginal, "1 channel(s) keep STAN's deadlines (expiry: original)"},
		{"2.11.0", 1, plan.ExpiryOriginal, plan.ExpiryOriginal, "keep STAN's deadlines"},
		{"2.15.2", 4, plan.ExpiryMigration, plan.ExpiryMigration, "for 1 channel(s): messages live longer than they would have on STAN; the plan asks for it (expiry: migration)"},
		{"2.10.29", 0, "", plan.ExpiryMigration, "the target (nats-server 2.10.29, JetStream API level 0) has no per-message TTL, which arrived in nats-server 2.11"},
		{"", 0, "", plan.ExpiryMigration, "the target's version is unknown"},
	} {
		d := &plan.Discovery{Source: source.Info{ClusterID: "c"}, Channels: chans, Target: plan.TargetState{Version: tc.version, APILevel: tc.level}}
		p := plan.Build(d, plan.Options{Expiry: tc.mode, Now: time.Now()})
		if got := p.Channel("aged").Expiry; got != tc.want {
			t.Errorf("target %q, --expiry %q: channel with max_age gets expiry %q, want %q", tc.version, tc.mode, got, tc.want)
		}
		if got := p.Channel("forever").Expiry; got != "" {
			t.Errorf("target %q: channel without max_age gets expiry %q, want none", tc.version, got)
		}
		found := false
		for _, f := range p.Findings {
			found = found || f.Object == "max_age" && strings.Contains(f.Message, tc.finding)
		}
		if !found {
			t.Errorf("target %q, --expiry %q: no max_age finding saying %q in %+v", tc.version, tc.mode, tc.finding, p.Findings)
		}
	}
}

// TestPlanFileExpiry: an edited plan's expiry is checked where it is
// written.
func TestPlanFileExpiry(t *testing.T) {
	const head = "version: 1\nsource: {cluster_id: c}\ntarget: {}\nheaders: full\nchannels:\n"
	for _, tc := range []struct{ channel, err string }{
		{"  - {channel: a, stream: a, first_seq: 1, last_seq: 0, msgs: 0, bytes: 0, limits: {max_age: 1h}, replicas: 1, storage: file, duplicate_window: 2m, expiry: original}\n", ""},
		{"  - {channel: a, stream: a, first_seq: 1, last_seq: 0, msgs: 0, bytes: 0, limits: {max_age: 0}, replicas: 1, storage: file, duplicate_window: 2m, expiry: migration}\n", ""},
		{"  - {channel: a, stream: a, first_seq: 1, last_seq: 0, msgs: 0, bytes: 0, limits: {max_age: 1h}, replicas: 1, storage: file, duplicate_window: 2m, expiry: later}\n",
			`p.yaml:6: channel "a": expiry "later": use original or migration`},
		{"  - {channel: a, stream: a, first_seq: 1, last_seq: 0, msgs: 0, bytes: 0, limits: {max_age: 0}, replicas: 1, storage: file, duplicate_window: 2m, expiry: original}\n",
			`p.yaml:6: channel "a": expiry "original" needs a max_age`},
	} {
		_, err := plan.Parse("p.yaml", []byte(head+tc.channel))
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%s: %v", tc.channel, err)
		case tc.err != "" && (!errors.Is(err, plan.ErrInvalid) || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: error %v, want one containing %q", tc.channel, err, tc.err)
		}
	}
}
