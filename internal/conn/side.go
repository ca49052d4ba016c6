package conn

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/nats-io/jsm.go/natscontext"
	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"

	"github.com/stanmigrate/stanmigrate/internal/urls"
)

// Side describes how to reach one server. Fields hold references (file
// paths, a context name) and, for user/password/token, values that come
// from flags or the environment and are never written anywhere.
type Side struct {
	Name     string // "STAN" or "JetStream", for messages
	URL      string
	Context  string
	Creds    string
	NKey     string
	User     string
	Password string
	Token    string
	TLSCert  string
	TLSKey   string
	TLSCA    string
	// Domain and APIPrefix say which JetStream the side's API requests
	// reach (JetStream side only): a domain (a leaf node's, a hub's) or
	// an account's imported API prefix. Both empty: the context's, else
	// the JetStream of the server connected to. Domain wins over
	// APIPrefix.
	Domain    string
	APIPrefix string
}

// flag is the command-line prefix of the side's settings, for advice.
func (s Side) flag() string {
	if s.Name == "STAN" {
		return "--stan-"
	}
	return "--nats-"
}

// hasAuth reports whether the side's own settings name credentials.
func (s Side) hasAuth() bool {
	return s.Creds != "" || s.NKey != "" || s.User != "" || s.Password != "" || s.Token != ""
}

// Resolved returns the URL to dial and the nats options, layering the
// side's own settings over a saved NATS CLI context when one is named:
// the context supplies the URL when the side has none, and its
// credentials unless the side names its own (then the context's are
// dropped, so a flag's user never travels with the context's JWT); a
// client certificate or CA given on the side replaces the context's.
func (s Side) Resolved() (string, []nats.Option, error) {
	var opts []nats.Option
	u := s.URL
	if s.Context != "" {
		nctx, err := natscontext.New(s.Context, true)
		if err != nil {
			return "", nil, fmt.Errorf("%s: load NATS context %q: %v: check %scontext (contexts live in ~/.config/nats/context, see `nats context ls`): %w",
				s.Name, s.Context, err, s.flag(), ErrBadConfig)
		}
		copts, err := nctx.NATSOptions()
		if err != nil {
			return "", nil, fmt.Errorf("%s: NATS context %q: %v: %w", s.Name, s.Context, err, ErrBadConfig)
		}
		opts = append(opts, copts...)
		if s.hasAuth() {
			opts = append(opts, withoutCredentials)
		}
		if u == "" {
			u = nctx.ServerURL()
		}
	}
	if u == "" {
		u = nats.DefaultURL
	}
	// The same grammar the command line checks its flags with: a URL
	// from a context or a plan file gets the same answer.
	if err := urls.CheckList(u, "nats", "tls", "ws", "wss"); err != nil {
		return "", nil, fmt.Errorf("%s server URL %s: %v: check %surl (for example nats://host:4222, several separated by commas): %w",
			s.Name, Redact(u), err, s.flag(), ErrBadConfig)
	}
	files := []struct{ flag, path string }{
		{"creds", s.Creds}, {"nkey", s.NKey}, {"tls-cert", s.TLSCert}, {"tls-key", s.TLSKey}, {"tls-ca", s.TLSCA},
	}
	for _, f := range files {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			return "", nil, fmt.Errorf("%s server %s: %s%s %s: %w: %w", s.Name, Redact(u), s.flag(), f.flag, f.path, errors.Unwrap(err), ErrBadConfig)
		}
	}
	if s.Creds != "" {
		if err := checkCreds(s.Creds); err != nil {
			return "", nil, fmt.Errorf("%s server %s: %screds %s %v: pass the credentials file (user JWT and seed) your operator issued: %w",
				s.Name, Redact(u), s.flag(), s.Creds, err, ErrBadConfig)
		}
		opts = append(opts, nats.UserCredentials(s.Creds))
	}
	if s.NKey != "" {
		o, err := nats.NkeyOptionFromSeed(s.NKey)
		if err != nil {
			return "", nil, fmt.Errorf("%s server %s: %snkey %s is not an NKey seed file: %v: %w", s.Name, Redact(u), s.flag(), s.NKey, err, ErrBadConfig)
		}
		opts = append(opts, o)
	}
	if s.User != "" || s.Password != "" {
		opts = append(opts, nats.UserInfo(s.User, s.Password))
	}
	if s.Token != "" {
		opts = append(opts, nats.Token(s.Token))
	}
	if s.TLSCert != "" || s.TLSKey != "" {
		if s.TLSCert == "" || s.TLSKey == "" {
			return "", nil, fmt.Errorf("%s server %s: a client certificate needs both %stls-cert and %stls-key: %w", s.Name, Redact(u), s.flag(), s.flag(), ErrBadConfig)
		}
		opts = append(opts, nats.ClientCert(s.TLSCert, s.TLSKey))
	}
	if s.TLSCA != "" {
		opts = append(opts, nats.RootCAs(s.TLSCA))
	}
	return u, opts, nil
}

// checkCreds makes sure a credentials file holds a user JWT and a seed:
// the client library would only say so once a server refused the
// connection, as if the credentials were wrong rather than missing.
func checkCreds(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	tok, err := jwt.ParseDecoratedJWT(data)
	if err == nil {
		_, err = jwt.DecodeUserClaims(strings.TrimSpace(tok))
	}
	if err != nil {
		return errors.New("holds no user JWT")
	}
	if _, err := jwt.ParseDecoratedNKey(data); err != nil {
		return errors.New("holds no user seed")
	}
	return nil
}

// withoutCredentials drops whatever credentials earlier options (a
// context's) set, before the side's own are applied.
func withoutCredentials(o *nats.Options) error {
	o.User, o.Password, o.UserInfo = "", "", nil
	o.Token, o.TokenHandler = "", nil
	o.Nkey, o.UserJWT, o.SignatureCB = "", nil, nil
	return nil
}

// Redact removes userinfo from URLs (a comma-separated list is allowed),
// so they can appear in messages, plans and reports.
func Redact(raw string) string {
	parts := strings.Split(raw, ",")
	for i, p := range parts {
		u, err := url.Parse(strings.TrimSpace(p))
		if err != nil || u.User == nil {
			if err != nil && strings.Contains(p, "@") {
				parts[i] = "<url with credentials>"
			}
			continue
		}
		u.User = nil
		parts[i] = u.String()
	}
	return strings.Join(parts, ",")
}
