package buildpack

import (
	"regexp"
	"strings"
)

// maxDetail bounds the part of a failure's reason taken from the build's output.
const maxDetail = 300

var (
	ansiEscape = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]`)
	exitCode   = regexp.MustCompile(`(?:non-zero code|exit code):? ?(\d+)`)
)

// Explain turns Docker's message about a failed build of the plan's Dockerfile, and the output
// of the failing step (its last lines), into one short sentence for the app's owner, such as
// "npm install failed: No matching version found for express@99.0.0. (ETARGET)".
func (p *Plan) Explain(dockerMsg string, output []string) string {
	dockerMsg = strings.TrimSpace(dockerMsg)
	var failed *step
	for i := range p.steps {
		if strings.Contains(dockerMsg, p.steps[i].run) {
			failed = &p.steps[i]
			break
		}
	}
	if failed == nil {
		return "build failed: " + truncate(firstLine(dockerMsg), maxDetail)
	}
	var detail string
	switch failed.tool {
	case "npm":
		detail = npmDetail(output)
	case "pip":
		detail = pipDetail(output)
	}
	if detail == "" {
		detail = lastLine(output)
	}
	msg := failed.what + " failed"
	if detail != "" {
		msg += ": " + truncate(detail, maxDetail)
	} else if m := exitCode.FindStringSubmatch(dockerMsg); m != nil {
		msg += " with exit code " + m[1]
	}
	return msg
}

// npmBoilerplate are npm's error lines that say nothing about the cause.
var npmBoilerplate = []string{
	"errno ", "syscall ", "path ", "A complete log of this run", "Log files were not written",
	"You can rerun the command", "Note that you can also install from a", "tarball, folder, http url",
	"this command with --force", "to accept an incorrect", "See /", "For a full report see",
	"Could not resolve dependency:", "Fix the upstream dependency conflict",
}

// npmDetail is the first line of npm's error that tells the cause, with npm's error code.
func npmDetail(output []string) string {
	var code, first string
	for _, raw := range output {
		line := clean(raw)
		rest, ok := cutAnyPrefix(line, "npm ERR!", "npm error")
		if !ok {
			continue
		}
		rest = strings.TrimSpace(rest)
		if rest == "" || strings.Contains(rest, "/_logs/") {
			continue
		}
		if c, ok := strings.CutPrefix(rest, "code "); ok {
			if code == "" {
				code = strings.TrimSpace(c)
			}
			continue
		}
		if hasAnyPrefix(rest, npmBoilerplate...) {
			continue
		}
		if first == "" {
			first = rest
		}
	}
	switch {
	case first == "" && code == "":
		return ""
	case first == "":
		return code
	case code == "" || strings.Contains(first, code):
		return truncate(first, maxDetail)
	}
	return truncate(first, maxDetail) + " (" + code + ")"
}

// pipDetail is pip's last "ERROR:" line.
func pipDetail(output []string) string {
	detail := ""
	for _, raw := range output {
		if rest, ok := strings.CutPrefix(clean(raw), "ERROR: "); ok && strings.TrimSpace(rest) != "" {
			detail = strings.TrimSpace(rest)
		}
	}
	return detail
}

// lastLine is the step's last line of output that is not Docker's own.
func lastLine(output []string) string {
	for i := len(output) - 1; i >= 0; i-- {
		line := clean(output[i])
		if line == "" || strings.HasPrefix(line, "--->") || strings.HasPrefix(line, "Removing intermediate container") {
			continue
		}
		return line
	}
	return ""
}

func clean(s string) string {
	return strings.TrimSpace(ansiEscape.ReplaceAllString(s, ""))
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return strings.TrimSpace(line)
}

func cutAnyPrefix(s string, prefixes ...string) (string, bool) {
	for _, p := range prefixes {
		if rest, ok := strings.CutPrefix(s, p); ok {
			return rest, true
		}
	}
	return "", false
}

func hasAnyPrefix(s string, prefixes ...string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
