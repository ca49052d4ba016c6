package conn

import (
	"fmt"
	"strings"

	"github.com/nats-io/jsm.go/natscontext"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// API says which JetStream a connection's API requests reach: the one of
// the server connected to (zero value), the one of a JetStream domain (a
// leaf node's, a hub's), or the one behind an account's API prefix.
type API struct {
	Domain string
	Prefix string
}

// Subject prefix of the JetStream API, with its trailing dot.
func (a API) Subject() string {
	switch {
	case a.Domain != "":
		return "$JS." + a.Domain + ".API."
	case a.Prefix != "":
		return strings.TrimSuffix(a.Prefix, ".") + "."
	}
	return jetstream.DefaultAPIPrefix
}

// String names the API for messages.
func (a API) String() string {
	switch {
	case a.Domain != "":
		return fmt.Sprintf("JetStream domain %q", a.Domain)
	case a.Prefix != "":
		return fmt.Sprintf("JetStream API prefix %q", a.Prefix)
	}
	return "the server's own JetStream"
}

// JetStreamAPI is the API the side's settings name: its Domain, else its
// APIPrefix, else the saved context's jetstream_domain or
// jetstream_api_prefix.
func (s Side) JetStreamAPI() (API, error) {
	a := API{Domain: s.Domain, Prefix: s.APIPrefix}
	if a.Domain != "" {
		a.Prefix = ""
	}
	if a == (API{}) && s.Context != "" {
		nctx, err := natscontext.New(s.Context, true)
		if err != nil {
			return API{}, fmt.Errorf("%s: load NATS context %q: %v: check %scontext: %w", s.Name, s.Context, err, s.flag(), ErrBadConfig)
		}
		a = API{Domain: nctx.JSDomain(), Prefix: nctx.JSAPIPrefix()}
		if a.Domain != "" {
			a.Prefix = ""
		}
	}
	// A domain is one subject token; a prefix is a subject.
	if a.Domain != "" && (strings.ContainsAny(a.Domain, ".*> \t\r\n") || a.Domain != strings.TrimSpace(a.Domain)) {
		return API{}, fmt.Errorf("%s: JetStream domain %q is not a domain name (one word without dots, wildcards or spaces): check %sdomain or the context's jetstream_domain: %w",
			s.Name, a.Domain, s.flag(), ErrBadConfig)
	}
	if p := strings.TrimSuffix(a.Prefix, "."); a.Prefix != "" && (p == "" || strings.ContainsAny(p, "*> \t\r\n") || strings.Contains(p, "..")) {
		return API{}, fmt.Errorf("%s: JetStream API prefix %q is not a subject: check the context's jetstream_api_prefix: %w", s.Name, a.Prefix, ErrBadConfig)
	}
	return a, nil
}

// NewJetStream is a JetStream client on nc for the API the side names.
func NewJetStream(nc *nats.Conn, s Side, opts ...jetstream.JetStreamOpt) (jetstream.JetStream, error) {
	a, err := s.JetStreamAPI()
	if err != nil {
		return nil, err
	}
	switch {
	case a.Domain != "":
		return jetstream.NewWithDomain(nc, a.Domain, opts...)
	case a.Prefix != "":
		return jetstream.NewWithAPIPrefix(nc, a.Prefix, opts...)
	}
	return jetstream.New(nc, opts...)
}
