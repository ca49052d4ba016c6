package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ErrListen: the metrics address cannot be listened on (it does not
// parse, or it is in use).
var ErrListen = errors.New("cannot listen for metrics")

// Listen binds addr (host:port; an empty host means every interface), so
// that a bad or busy address is refused before a run changes anything.
func Listen(addr string) (net.Listener, error) {
	if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
		return nil, fmt.Errorf("--metrics-listen %q is not host:port (such as 127.0.0.1:9464 or :9464): %w", addr, ErrListen)
	}
	ln, err := net.Listen("tcp", addr)
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return nil, fmt.Errorf("--metrics-listen %s: the address is in use: pick another port: %w", addr, ErrListen)
	case err != nil:
		return nil, fmt.Errorf("--metrics-listen %s: %v: give a local address and a free port: %w", addr, err, ErrListen)
	}
	return ln, nil
}

// Server serves a Run's /metrics and /healthz on a listener.
type Server struct {
	srv  *http.Server
	done chan struct{}
	addr string
}

// Serve starts serving on ln: /metrics (the run's metrics, the Go
// runtime's and the process's) and /healthz (200 while the run is
// progressing, 503 otherwise, with one line saying why).
func Serve(ln net.Listener, r *Run) *Server {
	reg := prometheus.NewRegistry()
	reg.MustRegister(r, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		ok, detail := r.Health()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		fmt.Fprintln(w, detail)
	})
	s := &Server{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}, done: make(chan struct{}), addr: ln.Addr().String()}
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(ln)
	}()
	return s
}

// Addr is the address served (with the port chosen when :0 was asked).
func (s *Server) Addr() string { return s.addr }

// Close stops serving, letting a scrape under way finish (briefly).
func (s *Server) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
	<-s.done
}
