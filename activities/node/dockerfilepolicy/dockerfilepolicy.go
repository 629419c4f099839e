// Package dockerfilepolicy checks a customer's Dockerfile before the node builds it with
// Docker's classic builder.
//
// The classic builder runs inside dockerd, and two of its features reach past the build
// sandbox:
//
//   - ADD <url> is fetched by dockerd itself, from the daemon's own network namespace: the
//     host's loopback and every network the host can reach, not the build container's
//     network. A customer could read the node agent's or other services' local endpoints
//     into an image. So ADD never fetches a URL here; RUN curl/wget runs in the build
//     container and is subject to the build network's rules.
//   - FROM and COPY --from resolve against every image on the node, and the node holds
//     other organizations' app images (their code, and whatever secrets ended up in their
//     layers). So a build may start from, or copy out of, only the platform's runtime
//     images, public images, or its own organization's app images.
//
// ONBUILD triggers matter both ways: a base image's triggers run in this build (where the
// rules above must hold), and this Dockerfile's triggers run in a later build.
//
// Parsing and variable expansion use BuildKit's Dockerfile parser, instructions and shell
// lexer, the packages the engine's classic builder itself uses (Docker 28.5 vendors this
// BuildKit version), so the check sees the instructions the builder will run. Where the
// classic builder and BuildKit differ (COPY --from is expanded by BuildKit, not by the
// classic builder) the check takes the stricter reading.
//
// Messages never contain build-arg values (they can be secrets): they name variables, and
// quote only the customer's own Dockerfile text.
package dockerfilepolicy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/distribution/reference"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// Labels the platform puts on the images it builds.
const (
	LabelManaged = "skypanel.managed"
	LabelApp     = "skypanel.app"
	LabelOrg     = "skypanel.org"
	LabelBase    = "skypanel.base"
)

// Image is what the policy needs to know about an image that is on the node.
type Image struct {
	Labels  map[string]string // the image's config labels
	OnBuild []string          // the image's ONBUILD triggers (config OnBuild), as Dockerfile lines
}

// Lookup answers the local image a reference names, found=false when the node does not have it.
type Lookup func(ctx context.Context, ref string) (img Image, found bool, err error)

// Input is one build to check.
type Input struct {
	Dockerfile []byte            // the Dockerfile's bytes
	OrgID      string            // the building organization
	AppID      string            // the building app
	BuildArgs  map[string]string // build-time variables the build receives (they override ARG defaults)
	Lookup     Lookup
}

// Violation is a refusal the customer must fix: Error() is a one-line message naming the
// Dockerfile line and why.
type Violation struct {
	Line        int    // 1-based line of the instruction; 0 when the refusal is about the whole file
	Instruction string // the instruction's original text, truncated
	Reason      string
}

func (v *Violation) Error() string {
	var b strings.Builder
	b.WriteString("Dockerfile")
	if v.Line > 0 {
		fmt.Fprintf(&b, " line %d", v.Line)
	}
	if v.Instruction != "" {
		b.WriteString(": ")
		b.WriteString(v.Instruction)
	}
	b.WriteString(": ")
	b.WriteString(v.Reason)
	return b.String()
}

// maxQuoted bounds the Dockerfile text a message quotes, so one message stays one readable line.
const maxQuoted = 120

const (
	reasonAddURL = "ADD cannot fetch URLs on this platform (use RUN curl or wget, which run in the build sandbox)"
	reasonAddVar = "ADD sources cannot use variables on this platform, since a variable can hold a URL " +
		"(use COPY for local files, or RUN curl or wget for downloads)"
	allowedImages = "the platform's runtime images, public images, or its own organization's app images"
)

// builtinProxyArgs are the build args the classic builder applies without an ARG declaring
// them (builder/dockerfile/buildargs.go), so they take part in FROM expansion.
var builtinProxyArgs = map[string]bool{
	"HTTP_PROXY": true, "http_proxy": true,
	"HTTPS_PROXY": true, "https_proxy": true,
	"FTP_PROXY": true, "ftp_proxy": true,
	"NO_PROXY": true, "no_proxy": true,
	"ALL_PROXY": true, "all_proxy": true,
}

var (
	// appRepoPath matches the repository path of a platform app image, wherever it was pushed.
	appRepoPath = regexp.MustCompile(`(^|/)skypanel/app-[^/]+$`)
	// bareImageID matches a reference that names an image by ID rather than by repository.
	bareImageID = regexp.MustCompile(`^(sha256:[0-9a-f]+|[0-9a-f]{12,64})$`)
)

// Check parses in.Dockerfile and applies the platform's rules to it. It returns nil, a
// *Violation the customer must fix, or another error (a failed image lookup) that is not
// the customer's fault.
func Check(ctx context.Context, in Input) error {
	if in.Lookup == nil {
		return errors.New("dockerfilepolicy: Input.Lookup is nil")
	}
	res, err := parser.Parse(bytes.NewReader(in.Dockerfile))
	if err != nil {
		return parseViolation(err, in.Dockerfile)
	}
	stages, metaArgs, err := instructions.Parse(res.AST, nil)
	if err != nil {
		return parseViolation(err, in.Dockerfile)
	}
	if len(stages) == 0 {
		return &Violation{Reason: "the Dockerfile has no FROM instruction"}
	}

	c := &checker{
		in:     in,
		escape: res.EscapeToken,
		lex:    shell.NewLex(res.EscapeToken),
		images: map[string]lookupResult{},
	}
	meta, v := c.metaArgs(metaArgs)
	if v != nil {
		return v
	}
	var previous []string // lower-cased names of the stages before the current one ("" when unnamed)
	for i := range stages {
		st := &stages[i]
		sc := &scope{stages: previous, args: meta}
		if err := c.checkStage(ctx, st, sc); err != nil {
			return err
		}
		for _, cmd := range st.Commands {
			line := startLine(cmd.Location())
			reason, err := c.checkCommand(ctx, cmd, sc)
			if err != nil {
				return fmt.Errorf("dockerfilepolicy: checking Dockerfile line %d: %w", line, err)
			}
			if reason != "" {
				return &Violation{Line: line, Instruction: commandText(cmd), Reason: reason}
			}
		}
		previous = append(previous, strings.ToLower(st.Name))
	}
	return nil
}

type lookupResult struct {
	img   Image
	found bool
}

type checker struct {
	in     Input
	escape rune
	lex    *shell.Lex
	images map[string]lookupResult // Lookup answers by reference, so a name used twice is asked once
}

// scope is what a COPY --from value resolves against.
type scope struct {
	stages []string        // lower-cased names of the earlier stages of this build
	args   shell.EnvGetter // the meta ARGs; nil for a trigger that runs in a later, unknown build
}

func (s *scope) laterBuild() bool { return s.args == nil }

// checkStage applies the FROM rule to one stage, and the ADD and COPY --from rules to the
// ONBUILD triggers of the base image, which the classic builder runs at the start of the stage.
func (c *checker) checkStage(ctx context.Context, st *instructions.Stage, sc *scope) error {
	line, text := startLine(st.Location), quote(st.SourceCode)
	name, vars, err := c.expand(st.BaseName, sc.args)
	if err != nil {
		return &Violation{Line: line, Instruction: text, Reason: expandFailure("the image name", st.BaseName, err)}
	}
	if name == "" {
		return &Violation{Line: line, Instruction: text, Reason: "the image name is empty" + afterExpanding(vars)}
	}
	// The classic builder looks FROM up by stage name only (an index names an image here).
	if slices.Contains(sc.stages, strings.ToLower(name)) || name == "scratch" {
		return nil
	}
	reason, img, found, err := c.imageReason(ctx, name, vars, "start from")
	if err != nil {
		return fmt.Errorf("dockerfilepolicy: checking the base image of Dockerfile line %d: %w", line, err)
	}
	if reason != "" {
		return &Violation{Line: line, Instruction: text, Reason: reason}
	}
	if !found {
		return nil
	}
	for _, trigger := range img.OnBuild {
		reason, err := c.checkTrigger(ctx, trigger, sc)
		if err != nil {
			return fmt.Errorf("dockerfilepolicy: checking the ONBUILD triggers of the base image of Dockerfile line %d: %w", line, err)
		}
		if reason != "" {
			return &Violation{Line: line, Instruction: text,
				Reason: fmt.Sprintf("the base image's ONBUILD trigger %q is refused: %s", quote(trigger), reason)}
		}
	}
	return nil
}

// checkCommand returns why cmd is refused ("" when it is allowed).
func (c *checker) checkCommand(ctx context.Context, cmd instructions.Command, sc *scope) (string, error) {
	switch cmd := cmd.(type) {
	case *instructions.AddCommand:
		return c.addReason(cmd), nil
	case *instructions.CopyCommand:
		if cmd.From == "" {
			return "", nil
		}
		return c.copyFromReason(ctx, cmd.From, sc)
	case *instructions.OnbuildCommand:
		// The trigger runs in whatever build starts from this image later, where neither this
		// Dockerfile's stages nor its ARGs mean anything.
		reason, err := c.checkTrigger(ctx, cmd.Expression, &scope{})
		if reason != "" {
			reason = "ONBUILD trigger refused: " + reason
		}
		return reason, err
	}
	return "", nil
}

// checkTrigger parses one ONBUILD trigger the way the classic builder does when it runs it
// (parser.Parse of the trigger alone, then instructions.ParseCommand) and checks the command.
func (c *checker) checkTrigger(ctx context.Context, trigger string, sc *scope) (string, error) {
	res, err := parser.Parse(strings.NewReader(trigger))
	if err != nil {
		return "the trigger cannot be parsed: " + locationFree(err), nil
	}
	if len(res.AST.Children) != 1 {
		return "the trigger is not a single instruction", nil
	}
	if strings.EqualFold(res.AST.Children[0].Value, "from") {
		return "FROM cannot be an ONBUILD trigger", nil
	}
	cmd, err := instructions.ParseCommand(res.AST.Children[0])
	if err != nil {
		return "the trigger cannot be parsed: " + locationFree(err), nil
	}
	if _, ok := cmd.(*instructions.OnbuildCommand); ok && sc.laterBuild() {
		// The parser refuses ONBUILD ONBUILD; this only guards against recursing on a
		// hand-made image config.
		return "an ONBUILD trigger cannot itself be ONBUILD", nil
	}
	return c.checkCommand(ctx, cmd, sc)
}

// addReason applies the ADD rule: no source may be, or turn into, a URL.
func (c *checker) addReason(cmd *instructions.AddCommand) string {
	if cmd.Checksum != "" {
		return "ADD --checksum only applies to URLs, and " + reasonAddURL
	}
	if cmd.KeepGitDir != nil {
		return "ADD --keep-git-dir only applies to Git URLs, and " + reasonAddURL
	}
	for _, src := range cmd.SourcePaths {
		if reason := c.addSourceReason(src); reason != "" {
			return reason
		}
	}
	return ""
}

func (c *checker) addSourceReason(src string) string {
	// The classic builder expands ADD sources with the stage's ENV (including ENV inherited
	// from the base image) and build args; rather than track every value, no variable at all.
	if strings.Contains(src, "$") {
		return reasonAddVar
	}
	if looksLikeURL(src) {
		return reasonAddURL
	}
	// Quotes and escapes are removed by the builder's lexer ("http:\/\/x" becomes a URL). The
	// lexer uses this file's escape token, but a trigger from ONBUILD runs with the escape
	// token of the build it lands in, so try both tokens Dockerfiles can choose. A word the
	// lexer rejects is fine: the builder rejects it too, before fetching anything.
	for _, tok := range []rune{c.escape, '\\', '`'} {
		word, _, err := shell.NewLex(tok).ProcessWord(src, noEnv{})
		if err == nil && looksLikeURL(word) {
			return reasonAddURL
		}
	}
	return ""
}

func looksLikeURL(s string) bool {
	s = strings.ToLower(s)
	return strings.Contains(s, "://") || strings.HasPrefix(strings.TrimLeftFunc(s, unicode.IsSpace), "git@")
}

// copyFromReason applies the image rule to a COPY --from value.
func (c *checker) copyFromReason(ctx context.Context, from string, sc *scope) (string, error) {
	if sc.laterBuild() && strings.Contains(from, "$") {
		return "COPY --from in an ONBUILD trigger cannot use variables, since they would take the values of a later build", nil
	}
	// The classic builder does not expand --from, BuildKit expands it with the meta ARGs;
	// checking the expanded value covers both (an unexpanded "$X" is no valid reference).
	name, vars, err := c.expand(from, sc.args)
	if err != nil {
		return expandFailure("the COPY --from value", from, err), nil
	}
	if name == "" {
		return "the COPY --from value is empty" + afterExpanding(vars), nil
	}
	if slices.Contains(sc.stages, strings.ToLower(name)) {
		return "", nil
	}
	if ix, err := strconv.ParseInt(name, 10, 0); err == nil {
		switch {
		case sc.laterBuild():
			return "", nil // a stage of the later build
		case ix >= 0 && ix < int64(len(sc.stages)):
			return "", nil
		default:
			return "COPY --from must name an earlier build stage, this index does not", nil
		}
	}
	if name == "scratch" {
		return "", nil
	}
	reason, _, _, err := c.imageReason(ctx, name, vars, "copy from")
	if err != nil {
		return "", fmt.Errorf("checking COPY --from: %w", err)
	}
	return reason, nil
}

// imageReason applies the image rule to a reference that is neither a stage nor scratch. vars
// are the variables the reference was expanded from: when there are any, the reference may
// carry a build-arg value and is not quoted. verb completes "a build may ... ".
func (c *checker) imageReason(ctx context.Context, ref string, vars []string, verb string) (reason string, img Image, found bool, err error) {
	subject := "this is"
	if len(vars) > 0 {
		subject = "the image that " + varList(vars) + " names is"
	}
	allowed := fmt.Sprintf("; a build may %s %s", verb, allowedImages)

	parsed, perr := reference.ParseAnyReference(ref)
	if perr != nil {
		// The builder refuses it too; say so before asking the engine about it.
		if len(vars) > 0 {
			return subject + " not a valid image reference", Image{}, false, nil
		}
		return fmt.Sprintf("%s not a valid image reference (%v)", subject, perr), Image{}, false, nil
	}

	res, ok := c.images[ref]
	if !ok {
		res.img, res.found, err = c.in.Lookup(ctx, ref)
		if err != nil {
			return "", Image{}, false, fmt.Errorf("looking up the image: %w", err)
		}
		c.images[ref] = res
	}

	if res.found {
		if !c.ownsImage(res.img.Labels) {
			return subject + " another organization's app image" + allowed, Image{}, false, nil
		}
		return "", res.img, true, nil
	}

	if bareImageID.MatchString(ref) {
		return subject + " an image ID this node does not have" + allowed, Image{}, false, nil
	}
	if named, ok := parsed.(reference.Named); ok && appRepoPath.MatchString(reference.Path(named)) {
		return subject + " a platform app image this node does not hold, so the platform cannot check whose it is" + allowed, Image{}, false, nil
	}
	// A public image: the builder pulls it. Its ONBUILD triggers are not known until then.
	return "", Image{}, false, nil
}

// ownsImage tells whether the building app may use an image with these labels: any image
// that is not an app image, or an app image of the building organization (of the building
// app, for an app image that predates the org label).
func (c *checker) ownsImage(labels map[string]string) bool {
	app, isApp := labels[LabelApp]
	if !isApp {
		return true
	}
	if org := labels[LabelOrg]; org != "" {
		return org == c.in.OrgID
	}
	return app != "" && app == c.in.AppID
}

// metaArgs evaluates the ARGs before the first FROM the way the classic builder does
// (processMetaArg): each line is expanded with the ARGs declared before it, then declared.
func (c *checker) metaArgs(cmds []instructions.ArgCommand) (*argEnv, *Violation) {
	env := &argEnv{declared: map[string]*string{}, overrides: c.in.BuildArgs}
	for i := range cmds {
		cmd := &cmds[i]
		err := cmd.Expand(func(word string) (string, error) {
			w, _, err := c.lex.ProcessWord(word, env)
			return w, err
		})
		if err != nil {
			return nil, &Violation{Line: startLine(cmd.Location()), Instruction: quote(cmd.String()),
				Reason: expandFailure("the ARG", cmd.String(), err)}
		}
		for _, kv := range cmd.Args {
			env.declared[kv.Key] = kv.Value
		}
	}
	return env, nil
}

// expand runs word through the builder's lexer with env (none when env is nil) and returns
// the variables it referred to, set or not.
func (c *checker) expand(word string, env shell.EnvGetter) (string, []string, error) {
	if env == nil {
		env = noEnv{}
	}
	res, err := c.lex.ProcessWordWithMatches(word, env)
	if err != nil {
		return "", nil, err
	}
	var vars []string
	for k := range res.Matched {
		vars = append(vars, k)
	}
	for k := range res.Unmatched {
		vars = append(vars, k)
	}
	slices.Sort(vars)
	return res.Result, slices.Compact(vars), nil
}

// argEnv is the meta-ARG environment: a declared ARG's default, overridden by the build arg of
// the same name. A build arg no ARG declares does not apply (except the builtin proxy args).
type argEnv struct {
	declared  map[string]*string
	overrides map[string]string
}

func (e *argEnv) Get(key string) (string, bool) {
	_, declared := e.declared[key]
	if declared || builtinProxyArgs[key] {
		if v, ok := e.overrides[key]; ok {
			return v, true
		}
	}
	if v := e.declared[key]; v != nil {
		return *v, true
	}
	return "", false
}

func (e *argEnv) Keys() []string {
	keys := make([]string, 0, len(e.declared))
	for k := range e.declared {
		keys = append(keys, k)
	}
	for k := range builtinProxyArgs {
		if _, ok := e.overrides[k]; ok && e.declared[k] == nil {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

type noEnv struct{}

func (noEnv) Get(string) (string, bool) { return "", false }
func (noEnv) Keys() []string            { return nil }

// parseViolation turns a parser or instructions error into a Violation at the line the
// parser reports, quoting that line of the Dockerfile.
func parseViolation(err error, dockerfile []byte) *Violation {
	v := &Violation{Reason: err.Error()}
	var le *parser.LocationError
	if errors.As(err, &le) {
		v.Reason = le.Error() // without instructions' "dockerfile parse error on line N" prefix
		if len(le.Locations) > 0 && len(le.Locations[0]) > 0 {
			v.Line = le.Locations[0][0].Start.Line
		}
	}
	if v.Reason == "file with no instructions" {
		return &Violation{Reason: "the Dockerfile has no instructions"}
	}
	if lines := bytes.Split(dockerfile, []byte("\n")); v.Line > 0 && v.Line <= len(lines) {
		v.Instruction = quote(strings.TrimPrefix(string(lines[v.Line-1]), "\uFEFF"))
	}
	v.Reason = oneLine(v.Reason)
	return v
}

// locationFree is err's message without location wrappers (a trigger's lines mean nothing to
// the customer).
func locationFree(err error) string {
	var le *parser.LocationError
	if errors.As(err, &le) {
		return oneLine(le.Error())
	}
	return oneLine(err.Error())
}

func startLine(loc []parser.Range) int {
	if len(loc) == 0 {
		return 0
	}
	return loc[0].Start.Line
}

func commandText(cmd instructions.Command) string {
	if s, ok := cmd.(fmt.Stringer); ok {
		return quote(s.String())
	}
	return strings.ToUpper(cmd.Name())
}

// expandFailure explains a lexer error on word. The lexer's message can quote expanded values
// (${X:?$TOKEN} reports TOKEN's value), so it is shown only for a word without variables.
func expandFailure(what, word string, err error) string {
	if strings.Contains(word, "$") {
		return "cannot expand the variables in " + what + " (check the ${...} syntax, and that required variables are set)"
	}
	return fmt.Sprintf("cannot process %s: %s", what, oneLine(err.Error()))
}

func afterExpanding(vars []string) string {
	if len(vars) == 0 {
		return ""
	}
	return " after expanding " + varList(vars)
}

func varList(vars []string) string {
	out := make([]string, len(vars))
	for i, v := range vars {
		out[i] = "$" + v
	}
	return strings.Join(out, ", ")
}

// quote makes Dockerfile text fit in a one-line message.
func quote(s string) string {
	s = oneLine(strings.TrimSpace(s))
	if utf8.RuneCountInString(s) <= maxQuoted {
		return s
	}
	r := []rune(s)
	return string(r[:maxQuoted-1]) + "…"
}

func oneLine(s string) string {
	return strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' }), " ")
}
