package buildpack

import (
	"bytes"
	"regexp"
	"strings"
	"unicode/utf8"
)

// MaxWebCommand is the longest web: command a Procfile may give, in bytes.
const MaxWebCommand = 4096

// procfileLine is "name: command"; process names are letters, digits, '_' and '-'.
var procfileLine = regexp.MustCompile(`^([A-Za-z0-9_-]+)[ \t]*:[ \t]*(.*)$`)

// ParseProcfile returns the command of the Procfile's web: process ("" when it has none).
//
// The command is the app owner's own and runs in their own container, through bash there (as
// Heroku runs it): it is never run on the node and never put on a command line. The generated
// Dockerfile carries it JSON-encoded in an exec-form CMD, which Docker decodes back to the exact
// bytes, so quotes, $(...), backslashes and the like keep their meaning for the container's
// shell only. What could not survive that trip is refused: a NUL or another control character
// (a tab excepted), invalid UTF-8, a command longer than MaxWebCommand.
func ParseProcfile(data []byte) (string, error) {
	if !utf8.Valid(data) {
		return "", userError("the Procfile is not valid UTF-8 text")
	}
	data = bytes.TrimPrefix(data, []byte("\uFEFF"))
	var web string
	found := false
	for i, raw := range strings.Split(string(data), "\n") {
		line := strings.TrimRight(raw, "\r")
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		m := procfileLine.FindStringSubmatch(strings.TrimLeft(line, " \t"))
		if m == nil || m[1] != "web" {
			continue
		}
		if found {
			return "", userError("the Procfile has more than one web: line (line %d)", i+1)
		}
		found = true
		cmd := strings.TrimSpace(m[2])
		switch {
		case cmd == "":
			return "", userError("the Procfile's web: line (line %d) has no command", i+1)
		case len(cmd) > MaxWebCommand:
			return "", userError("the Procfile's web: command (line %d) is longer than %d bytes", i+1, MaxWebCommand)
		}
		for _, r := range cmd {
			if r == '\t' {
				continue
			}
			if r < 0x20 || r == 0x7f {
				return "", userError("the Procfile's web: command (line %d) contains a control character (%U)", i+1, r)
			}
		}
		web = cmd
	}
	return web, nil
}
