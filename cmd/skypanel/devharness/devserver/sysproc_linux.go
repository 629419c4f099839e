package devserver

import "syscall"

// sysProcAttr puts the child in its own process group (Stop signals the whole group, and a
// terminal's Ctrl-C reaches only us, so we stop it in order) and asks the kernel to send it
// SIGTERM when the thread that started it dies. Go only ends OS threads of goroutines that
// exit while locked to them, which Start does not do.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
