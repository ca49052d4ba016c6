package serverbin

import "syscall"

// sysProcAttr has the kernel kill a server whose test process died, so that
// an aborted `go test` leaves no nats-server behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
