package monitor

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
)

// transportErr turns a client.Do failure into a short cause: the url.Error
// around it repeats the URL (with a masked but present user name), and the
// raw dial error is long; operators want "connection refused".
func (c *Client) transportErr(ctx context.Context, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		if errors.Is(ctxErr, context.DeadlineExceeded) {
			// The caller's deadline is a timeout too: keep both facts.
			return fmt.Errorf("timeout: %w: %w", ErrUnreachable, ctxErr)
		}
		return ctxErr
	}
	inner := err
	var ue *url.Error
	if errors.As(err, &ue) {
		inner = ue.Err
	}
	var dnsErr *net.DNSError
	var netErr net.Error
	switch {
	case errors.Is(inner, syscall.ECONNREFUSED):
		return fmt.Errorf("connection refused: %w", ErrUnreachable)
	case errors.As(inner, &dnsErr):
		return fmt.Errorf("lookup %s: %s: %w", dnsErr.Name, dnsErr.Err, ErrUnreachable)
	case errors.As(inner, &netErr) && netErr.Timeout():
		return fmt.Errorf("timeout: %w", ErrUnreachable)
	case errors.Is(inner, syscall.ECONNRESET), errors.Is(inner, syscall.EHOSTUNREACH),
		errors.Is(inner, syscall.ENETUNREACH), errors.Is(inner, io.EOF),
		errors.Is(inner, io.ErrUnexpectedEOF):
		return fmt.Errorf("%s: %w", c.scrub(inner.Error()), ErrUnreachable)
	}
	if advice := tlsAdvice(inner); advice != "" {
		return fmt.Errorf("%w: %s: %s", ErrTLS, c.scrub(inner.Error()), advice)
	}
	var opErr *net.OpError
	if errors.As(inner, &opErr) {
		return fmt.Errorf("%s: %w", c.scrub(inner.Error()), ErrUnreachable)
	}
	// TLS failures, redirect loops...: the endpoint is reachable but wrong.
	return errors.New(c.scrub(inner.Error()))
}

// tlsAdvice says what to fix for a TLS failure, "" when err is not one.
func tlsAdvice(err error) string {
	msg := err.Error()
	var unknown x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	var host x509.HostnameError
	switch {
	case strings.Contains(msg, "server gave HTTP response to HTTPS client"):
		return "the STAN monitoring endpoint speaks plain HTTP: use an http:// URL for --stan-monitor"
	case strings.Contains(msg, "remote error: tls:"):
		return "the STAN monitoring endpoint refused the client certificate: check --stan-monitor-cert and --stan-monitor-key"
	case errors.As(err, &unknown):
		return "the STAN monitoring endpoint's certificate is not signed by a CA trusted here: pass that CA with --stan-monitor-ca (default: --stan-tls-ca)"
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return "renew the STAN monitoring endpoint's certificate (or check the clocks)"
	case errors.As(err, &host):
		return "use a host name the STAN monitoring endpoint's certificate lists"
	case errors.As(err, &invalid), strings.Contains(msg, "x509:"), strings.Contains(msg, "tls:"):
		return "check --stan-monitor-ca and the STAN monitoring endpoint's certificate"
	}
	return ""
}

// HTTPClient returns an HTTP client for an HTTPS monitoring endpoint: it
// trusts the CA in caFile (PEM; empty: the system's roots) and presents
// the client certificate in certFile and keyFile when both are set.
func HTTPClient(caFile, certFile, keyFile string) (*http.Client, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("monitoring CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("monitoring CA %s: no PEM certificate in it", caFile)
		}
		tc.RootCAs = pool
	}
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("a monitoring client certificate needs both a certificate and a key file")
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("monitoring client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tc
	return &http.Client{Timeout: defaultTimeout, Transport: tr}, nil
}
