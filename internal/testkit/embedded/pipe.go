package embedded

import (
	"fmt"
	"io"
	"net"
	"sync"
)

// pipe is a loopback TCP forwarder that can be cut: while cut it drops
// the connections it carries and refuses new ones. A cluster routes its
// nodes through pipes to take a node off the network without the clean
// goodbye (leader hand-over) a server's Shutdown sends.
type pipe struct {
	l      net.Listener
	target string
	mu     sync.Mutex
	cut    bool
	conns  map[net.Conn]struct{}
	done   chan struct{}
}

func newPipe(target string) (*pipe, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("embedded: pipe: %w", err)
	}
	p := &pipe{l: l, target: target, conns: map[net.Conn]struct{}{}, done: make(chan struct{})}
	go p.accept()
	return p, nil
}

func (p *pipe) port() int { return p.l.Addr().(*net.TCPAddr).Port }

func (p *pipe) accept() {
	defer close(p.done)
	for {
		in, err := p.l.Accept()
		if err != nil {
			return
		}
		go p.forward(in)
	}
}

func (p *pipe) forward(in net.Conn) {
	if !p.track(in) {
		in.Close()
		return
	}
	out, err := net.Dial("tcp", p.target)
	if err != nil || !p.track(out) {
		if out != nil {
			out.Close()
		}
		p.drop(in)
		return
	}
	var wg sync.WaitGroup
	wg.Add(2)
	copyHalf := func(dst, src net.Conn) {
		defer wg.Done()
		io.Copy(dst, src)
		// One side ended: end both, as a peer's crash would.
		p.drop(dst)
		p.drop(src)
	}
	go copyHalf(out, in)
	go copyHalf(in, out)
	wg.Wait()
}

// track registers c unless the pipe is cut.
func (p *pipe) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *pipe) drop(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

// setCut cuts the pipe (closing what it carries) or restores it.
func (p *pipe) setCut(cut bool) {
	p.mu.Lock()
	p.cut = cut
	var conns []net.Conn
	if cut {
		for c := range p.conns {
			conns = append(conns, c)
		}
		clear(p.conns)
	}
	p.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// close stops the pipe for good.
func (p *pipe) close() {
	p.setCut(true)
	p.l.Close()
	<-p.done
}
