//go:build !linux

package devserver

import "syscall"

// sysProcAttr puts the child in its own process group; only Linux has a parent-death signal.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
