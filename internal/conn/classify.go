package conn

import (
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// Classify turns a dial or protocol error into a message that names the
// side, the server (without credentials) and what to check.
func Classify(s Side, u string, err error) error {
	where := fmt.Sprintf("%s server %s", s.Name, Redact(u))
	p := s.flag()
	msg := strings.ToLower(err.Error())
	switch {
	case errors.Is(err, nats.ErrAuthExpired), errors.Is(err, nats.ErrAccountAuthExpired),
		strings.Contains(msg, "authentication expired"):
		return fmt.Errorf("%s: %w: the credentials have expired (%v): renew the user JWT (%screds or the context's)",
			where, ErrAuth, err, p)
	case errors.Is(err, nats.ErrAuthRevoked), strings.Contains(msg, "authentication revoked"):
		return fmt.Errorf("%s: %w: the credentials were revoked (%v): ask for a new user JWT (%screds)",
			where, ErrAuth, err, p)
	case errors.Is(err, nats.ErrAuthorization), strings.Contains(msg, "authorization violation"):
		// On connect the server says "Authorization Violation" for every
		// credential it does not accept: this is authentication.
		return fmt.Errorf("%s: %w: the server rejected the credentials (%v): check %suser/%spassword, %stoken, %snkey, %screds or the context's credentials for the %s side",
			where, ErrAuth, err, p, p, p, p, p, s.Name)
	case errors.Is(err, nats.ErrPermissionViolation), strings.Contains(msg, "permissions violation"):
		return fmt.Errorf("%s: %w (authorization violation): %v: %s", where, ErrPermission, err, permissionAdvice(s, err))
	}
	if advice := tlsAdvice(s, err); advice != "" {
		return fmt.Errorf("%s: %w: %v: %s", where, ErrTLS, err, advice)
	}
	switch {
	case errors.Is(err, nats.ErrNoServers), strings.Contains(msg, "connection refused"), strings.Contains(msg, "no such host"),
		strings.Contains(msg, "i/o timeout"), errors.Is(err, nats.ErrTimeout):
		return fmt.Errorf("%s: %v: is the server running and the URL right? %w", where, err, ErrUnreachable)
	}
	return fmt.Errorf("%s: %w", where, err)
}

// tlsAdvice says what to fix for a TLS failure, "" when err is not one.
func tlsAdvice(s Side, err error) string {
	p := s.flag()
	msg := strings.ToLower(err.Error())
	var unknown x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	var host x509.HostnameError
	switch {
	case errors.Is(err, nats.ErrSecureConnWanted):
		return fmt.Sprintf("the server does not offer TLS: check the URL, or drop %stls-ca/%stls-cert", p, p)
	case errors.Is(err, nats.ErrSecureConnRequired):
		return fmt.Sprintf("the server requires TLS: pass %stls-ca with the CA that signed its certificate", p)
	case strings.Contains(msg, "remote error: tls:"), strings.Contains(msg, "closed by remote after tls handshake"):
		// The server's alert, or (TLS 1.3, when the alert loses the race
		// with our first write) its hanging up: it did not accept our
		// client certificate.
		if strings.Contains(msg, "expired") {
			return fmt.Sprintf("the server rejected the client certificate as expired: renew %stls-cert", p)
		}
		return fmt.Sprintf("the server requires a client certificate signed by a CA it trusts: check %stls-cert and %stls-key", p, p)
	case errors.As(err, &unknown):
		return fmt.Sprintf("the server's certificate is not signed by a CA this side trusts: pass that CA with %stls-ca", p)
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return "renew the server's certificate (or check the clocks)"
	case errors.As(err, &host):
		return "connect with a host name the server's certificate lists"
	case errors.As(err, &invalid), errors.Is(err, nats.ErrTLS), strings.Contains(msg, "x509:"), strings.Contains(msg, "tls:"):
		return fmt.Sprintf("check %stls-ca, %stls-cert and %stls-key", p, p, p)
	}
	return ""
}

// permissionAdvice names what the side's user needs.
func permissionAdvice(s Side, err error) string {
	msg := strings.ToLower(err.Error())
	switch {
	case strings.Contains(msg, "$js.api"):
		return "the JetStream API is denied: grant the user publish on $JS.API.> (and subscribe on _INBOX.>)"
	case s.Name == "STAN":
		return "grant the user publish on _STAN.> and _INBOX.>, and subscribe on _INBOX.> (the STAN protocol's subjects)"
	case strings.Contains(msg, "subscription"):
		return "grant the user subscribe on _INBOX.> (replies from JetStream)"
	}
	return "grant the user publish on the channels' subjects, $JS.API.> and $JS.ACK.>, and subscribe on _INBOX.>"
}

// PermissionErr returns the permission violation the server reported on
// nc, classified for the side, or nil. A denied publish or subscribe is
// reported asynchronously, so a request that timed out may have been
// denied: callers ask here before treating a timeout as transient.
func PermissionErr(s Side, nc *nats.Conn) error {
	if nc == nil {
		return nil
	}
	return permissionErr(s, nc.ConnectedUrlRedacted(), nc)
}

func permissionErr(s Side, u string, nc *nats.Conn) error {
	last := nc.LastError()
	if last == nil || !errors.Is(last, nats.ErrPermissionViolation) {
		return nil
	}
	return Classify(s, u, last)
}

// failOnPermissionError calls abort once nc records a permission
// violation, until the returned stop is called.
func failOnPermissionError(nc *nats.Conn, abort func()) (stop func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if errors.Is(nc.LastError(), nats.ErrPermissionViolation) {
					abort()
					return
				}
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done) }) }
}
