package dockerfilepolicy

import (
	"context"
	"errors"
	"strings"
	"testing"
)

const (
	orgA  = "org-a"
	orgB  = "org-b"
	appA1 = "11111111-1111-1111-1111-111111111111" // app of org A
	appA2 = "22222222-2222-2222-2222-222222222222" // another app of org A
	appB1 = "33333333-3333-3333-3333-333333333333" // app of org B
)

// images is the fake node: what Lookup finds, by the exact reference it is asked about.
var images = map[string]Image{
	"skypanel/app-" + appA1 + ":v1":                     appImage(appA1, orgA),
	"skypanel/app-" + appA2 + ":v3":                     appImage(appA2, orgA),
	"skypanel/app-" + appB1 + ":v1":                     appImage(appB1, orgB),
	"registry.local:5000/skypanel/app-" + appB1 + ":v1": appImage(appB1, orgB),
	"skypanel/app-" + appA1 + ":legacy":                 {Labels: map[string]string{LabelManaged: "true", LabelApp: appA1, LabelBase: "false"}},
	"skypanel/app-" + appB1 + ":legacy":                 {Labels: map[string]string{LabelManaged: "true", LabelApp: appB1, LabelBase: "false"}},
	"skypanel/runtime-node:20":                          {Labels: map[string]string{LabelManaged: "true", LabelBase: "true"}},
	"node:20-bookworm-slim":                             {Labels: map[string]string{"maintainer": "someone"}},
	"0123456789ab":                                      appImage(appB1, orgB),
	"onbuild/url:1":                                     {OnBuild: []string{"RUN true", "ADD http://127.0.0.1:9/x /x"}},
	"onbuild/escaped:1":                                 {OnBuild: []string{`ADD http:\/\/127.0.0.1:9/x /x`}},
	"onbuild/copyfrom:1":                                {OnBuild: []string{"COPY --from=skypanel/app-" + appB1 + ":v1 /srv /srv"}},
	"onbuild/copystage:1":                               {OnBuild: []string{"COPY --from=build /out /srv", "COPY --from=0 /out /srv"}},
	"onbuild/ok:1":                                      {OnBuild: []string{"COPY . /src", "RUN make"}},
	"onbuild/garbage2:1":                                {OnBuild: []string{"ADD onlyone"}},
	"onbuild/garbage:1":                                 {OnBuild: []string{"FROM node:20"}},
}

func appImage(app, org string) Image {
	return Image{Labels: map[string]string{LabelManaged: "true", LabelApp: app, LabelOrg: org, LabelBase: "false"}}
}

func fakeLookup(_ context.Context, ref string) (Image, bool, error) {
	if strings.Contains(ref, "lookup-fails") {
		return Image{}, false, errors.New("engine unreachable")
	}
	img, ok := images[ref]
	return img, ok, nil
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name       string
		dockerfile string
		buildArgs  map[string]string
		// want is "" when the Dockerfile is allowed, else substrings of the Violation's message.
		want     []string
		wantLine int
	}{
		// Rule 1: ADD never fetches a URL.
		{name: "ADD http", dockerfile: "FROM node:20-bookworm-slim\nWORKDIR /srv\nADD http://127.0.0.1:9/x /srv/",
			want: []string{"Dockerfile line 3: ADD http://127.0.0.1:9/x /srv/: ADD cannot fetch URLs on this platform (use RUN curl or wget"}, wantLine: 3},
		{name: "ADD https", dockerfile: "FROM debian\nADD https://example.com/a.tgz /opt/", want: []string{"ADD cannot fetch URLs"}, wantLine: 2},
		{name: "ADD uppercase HTTP", dockerfile: "FROM debian\nADD HTTP://127.0.0.1/x /x", want: []string{"ADD cannot fetch URLs"}},
		{name: "ADD quoted", dockerfile: "FROM debian\nADD \"http://127.0.0.1/x\" /x", want: []string{"ADD cannot fetch URLs"}},
		{name: "ADD JSON form", dockerfile: "FROM debian\nADD [\"local.txt\", \"http://127.0.0.1/x\", \"/x/\"]", want: []string{"ADD cannot fetch URLs"}},
		{name: "ADD backslash-escaped", dockerfile: "FROM debian\nADD http:\\/\\/127.0.0.1/x /x", want: []string{"ADD cannot fetch URLs"}},
		{name: "ADD escaped letters", dockerfile: "FROM debian\nADD h\\t\\tp:/\\/127.0.0.1/x /x", want: []string{"ADD cannot fetch URLs"}},
		{name: "ADD backtick-escaped under escape directive", dockerfile: "# escape=`\nFROM debian\nADD http:`/`/127.0.0.1/x /x", want: []string{"line 3", "ADD cannot fetch URLs"}},
		{name: "ADD continuation line", dockerfile: "FROM debian\nADD \\\n  http://127.0.0.1/x \\\n  /x", want: []string{"line 2", "ADD cannot fetch URLs"}},
		{name: "ADD git ssh", dockerfile: "FROM debian\nADD git@github.com:moby/moby.git /src", want: []string{"ADD cannot fetch URLs"}},
		{name: "ADD git URL", dockerfile: "FROM debian\nADD git://example.com/repo.git /src", want: []string{"ADD cannot fetch URLs"}},
		{name: "ADD via ARG", dockerfile: "FROM debian\nARG SRC=http://127.0.0.1/x\nADD $SRC /x", want: []string{"line 3", "cannot use variables"}},
		{name: "ADD via ENV braces", dockerfile: "FROM debian\nENV SRC=http://127.0.0.1/x\nADD ${SRC} /x", want: []string{"cannot use variables", "use COPY for local files"}},
		{name: "ADD variable even for a local file", dockerfile: "FROM debian\nARG F=app.tgz\nADD $F /srv/", want: []string{"cannot use variables"}},
		{name: "ADD --checksum", dockerfile: "FROM debian\nADD --checksum=sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d app.tgz /x", want: []string{"--checksum", "ADD cannot fetch URLs"}},
		{name: "ADD --keep-git-dir", dockerfile: "FROM debian\nADD --keep-git-dir=true repo /src", want: []string{"--keep-git-dir"}},
		// Inside double quotes the lexer keeps "\/" as is, so this is a local path, as the builder sees it.
		{name: "ADD escape inside double quotes stays local", dockerfile: "FROM debian\nADD \"http:\\/\\/x\" /x"},
		{name: "ADD local ok", dockerfile: "FROM debian\nADD app.tar.gz /srv/\nADD --chown=1000:1000 [\"a b.txt\", \"/srv/\"]"},
		{name: "ADD heredoc ok", dockerfile: "FROM debian\nADD <<EOF /etc/motd\nhello http://example.com\nEOF\n"},
		{name: "COPY local ok", dockerfile: "FROM debian\nCOPY . /src\nCOPY --chown=1:1 package.json /src/"},
		{name: "COPY of a URL-looking name is not a fetch", dockerfile: "FROM debian\nCOPY http://x /x"},

		// Rule 2: FROM and COPY --from name only allowed images.
		{name: "multi-stage COPY --from stage ok", dockerfile: "FROM node:20-bookworm-slim AS build\nRUN npm ci\nFROM debian\nCOPY --from=build /out /srv\nCOPY --from=BUILD /out /srv"},
		{name: "COPY --from index ok", dockerfile: "FROM node:20-bookworm-slim\nRUN make\nFROM debian\nCOPY --from=0 /out /srv"},
		{name: "COPY --from current index refused", dockerfile: "FROM debian\nCOPY --from=0 /out /srv", want: []string{"earlier build stage"}},
		{name: "FROM previous stage ok", dockerfile: "FROM skypanel/runtime-node:20 AS base\nFROM Base\nRUN true"},
		{name: "FROM other org's app image refused", dockerfile: "FROM skypanel/app-" + appB1 + ":v1\nRUN true",
			want: []string{"Dockerfile line 1: FROM skypanel/app-" + appB1 + ":v1: this is another organization's app image; a build may start from the platform's runtime images, public images, or its own organization's app images"}, wantLine: 1},
		{name: "FROM other org's app image in a later stage refused", dockerfile: "FROM debian AS a\nFROM registry.local:5000/skypanel/app-" + appB1 + ":v1", want: []string{"line 2", "another organization's app image"}},
		{name: "FROM own org's app image ok", dockerfile: "FROM skypanel/app-" + appA2 + ":v3"},
		{name: "FROM own app without org label ok", dockerfile: "FROM skypanel/app-" + appA1 + ":legacy"},
		{name: "FROM other app without org label refused", dockerfile: "FROM skypanel/app-" + appB1 + ":legacy", want: []string{"another organization's app image"}},
		{name: "FROM platform runtime ok", dockerfile: "FROM skypanel/runtime-node:20"},
		{name: "FROM found public image ok", dockerfile: "FROM node:20-bookworm-slim"},
		{name: "FROM public image not on node ok", dockerfile: "FROM ghcr.io/x/y:1\nFROM debian"},
		{name: "FROM scratch ok", dockerfile: "FROM scratch\nCOPY app /app"},
		{name: "FROM $BASE default other org refused", dockerfile: "ARG BASE=skypanel/app-" + appB1 + ":v1\nFROM $BASE",
			want: []string{"line 2: FROM $BASE: the image that $BASE names is another organization's app image"}},
		{name: "FROM ${BASE:-default} other org refused", dockerfile: "ARG BASE\nFROM ${BASE:-skypanel/app-" + appB1 + ":v1}", want: []string{"another organization's app image"}},
		{name: "FROM meta ARG built from another ARG", dockerfile: "ARG APP=" + appB1 + "\nARG BASE=skypanel/app-${APP}:v1\nFROM ${BASE}", want: []string{"another organization's app image"}},
		{name: "build arg overrides declared ARG", dockerfile: "ARG BASE=node:20-bookworm-slim\nFROM $BASE",
			buildArgs: map[string]string{"BASE": "skypanel/app-" + appB1 + ":v1"}, want: []string{"the image that $BASE names is another organization's app image"}},
		{name: "build arg override to an allowed image", dockerfile: "ARG BASE=skypanel/app-" + appB1 + ":v1\nFROM $BASE",
			buildArgs: map[string]string{"BASE": "node:20-bookworm-slim"}},
		{name: "undeclared build arg does not apply", dockerfile: "FROM ${BASE:-node:20-bookworm-slim}",
			buildArgs: map[string]string{"BASE": "skypanel/app-" + appB1 + ":v1"}},
		{name: "builtin proxy build arg applies undeclared", dockerfile: "FROM ${HTTP_PROXY:-node:20-bookworm-slim}",
			buildArgs: map[string]string{"HTTP_PROXY": "skypanel/app-" + appB1 + ":v1"}, want: []string{"another organization's app image"}},
		{name: "stage ARG does not apply to FROM", dockerfile: "FROM debian\nARG BASE=skypanel/app-" + appB1 + ":v1\nFROM ${BASE:-node:20-bookworm-slim}"},
		{name: "FROM empty after expansion refused", dockerfile: "ARG BASE\nFROM $BASE", want: []string{"the image name is empty after expanding $BASE"}},
		{name: "FROM registry app image by digest not found refused",
			dockerfile: "FROM registry.local:5000/skypanel/app-" + appB1 + "@sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d",
			want:       []string{"a platform app image this node does not hold"}},
		{name: "FROM local app image not found refused", dockerfile: "FROM skypanel/app-" + appB1 + ":v9", want: []string{"does not hold"}},
		{name: "FROM image ID found applies labels", dockerfile: "FROM 0123456789ab", want: []string{"another organization's app image"}},
		{name: "FROM image ID not found refused", dockerfile: "FROM sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d", want: []string{"an image ID this node does not have"}},
		{name: "FROM invalid reference refused", dockerfile: "FROM Node:20", want: []string{"not a valid image reference"}},
		{name: "FROM invalid reference from a build arg hides the value", dockerfile: "ARG BASE=debian\nFROM $BASE",
			buildArgs: map[string]string{"BASE": "S3CRET-VALUE"}, want: []string{"the image that $BASE names is not a valid image reference"}},
		{name: "COPY --from other org's image refused", dockerfile: "FROM debian\nCOPY --from=skypanel/app-" + appB1 + ":v1 /srv /srv",
			want: []string{"line 2", "another organization's app image; a build may copy from"}},
		{name: "COPY --from own org's image ok", dockerfile: "FROM debian\nCOPY --from=skypanel/app-" + appA2 + ":v3 /srv /srv"},
		{name: "COPY --from a later stage is an image", dockerfile: "FROM debian\nCOPY --from=skypanel/app-" + appB1 + ":v1 /a /a\nFROM debian AS later", want: []string{"another organization's app image"}},
		{name: "COPY --from via meta ARG refused", dockerfile: "ARG SRC=skypanel/app-" + appB1 + ":v1\nFROM debian\nCOPY --from=$SRC /srv /srv", want: []string{"the image that $SRC names is another organization's app image"}},

		// Rule 3: ONBUILD.
		{name: "ONBUILD ADD url refused", dockerfile: "FROM debian\nONBUILD ADD http://127.0.0.1:9/x /x", want: []string{"line 2: ONBUILD ADD http://127.0.0.1:9/x /x: ONBUILD trigger refused: ADD cannot fetch URLs"}},
		{name: "ONBUILD ADD variable refused", dockerfile: "FROM debian\nONBUILD ADD $U /x", want: []string{"cannot use variables"}},
		{name: "ONBUILD COPY --from other org refused", dockerfile: "FROM debian\nONBUILD COPY --from=skypanel/app-" + appB1 + ":v1 /a /a", want: []string{"another organization's app image"}},
		{name: "ONBUILD COPY --from variable refused", dockerfile: "FROM debian\nONBUILD COPY --from=$X /a /a", want: []string{"cannot use variables"}},
		{name: "ONBUILD COPY --from stage-like name ok", dockerfile: "FROM debian\nONBUILD COPY --from=build /a /a\nONBUILD COPY --from=1 /a /a\nONBUILD RUN make"},
		{name: "ONBUILD FROM refused", dockerfile: "FROM debian\nONBUILD FROM debian", want: []string{"line 2", "FROM isn't allowed as an ONBUILD trigger"}},
		{name: "ONBUILD ONBUILD refused", dockerfile: "FROM debian\nONBUILD ONBUILD RUN x", want: []string{"line 2", "Chaining ONBUILD"}},
		{name: "base image ONBUILD ADD url refused", dockerfile: "FROM debian\nRUN true\nFROM onbuild/url:1 AS x",
			want: []string{`line 3: FROM onbuild/url:1 AS x: the base image's ONBUILD trigger "ADD http://127.0.0.1:9/x /x" is refused: ADD cannot fetch URLs`}},
		{name: "base image ONBUILD escaped ADD refused", dockerfile: "FROM onbuild/escaped:1", want: []string{"ONBUILD trigger", "ADD cannot fetch URLs"}},
		{name: "base image ONBUILD COPY --from other org refused", dockerfile: "FROM onbuild/copyfrom:1", want: []string{"ONBUILD trigger", "another organization's app image"}},
		{name: "base image ONBUILD COPY --from earlier stage ok", dockerfile: "FROM debian AS build\nFROM onbuild/copystage:1"},
		{name: "base image ONBUILD COPY --from missing stage checked as image", dockerfile: "FROM onbuild/copystage:1", want: []string{"earlier build stage"}},
		{name: "base image harmless ONBUILD ok", dockerfile: "FROM onbuild/ok:1"},
		{name: "base image unparsable ONBUILD refused", dockerfile: "FROM onbuild/garbage2:1", want: []string{"ONBUILD trigger", "cannot be parsed"}},
		{name: "base image ONBUILD FROM refused", dockerfile: "FROM onbuild/garbage:1", want: []string{"ONBUILD trigger", "FROM cannot be an ONBUILD trigger"}},

		// Rule 4: parse errors.
		{name: "unknown instruction", dockerfile: "\uFEFFFROM debian\r\nFRUM debian\r\n", want: []string{"line 2: FRUM debian: unknown instruction: FRUM"}},
		{name: "bad FROM", dockerfile: "FROM a b", want: []string{"line 1", "FROM requires either one or three arguments"}},
		{name: "unterminated heredoc", dockerfile: "FROM debian\nRUN <<EOF\necho", want: []string{"line 2: RUN <<EOF: unterminated heredoc"}},
		{name: "instruction before FROM", dockerfile: "RUN true\nFROM debian", want: []string{"no build stage in current context"}},
		{name: "empty Dockerfile", dockerfile: "", want: []string{"the Dockerfile has no instructions"}},
		{name: "comments only", dockerfile: "# nothing\n\n", want: []string{"the Dockerfile has no instructions"}},
		{name: "ARG only", dockerfile: "ARG X=1", want: []string{"no FROM instruction"}},
		{name: "bad expansion", dockerfile: "FROM ${X", want: []string{"cannot expand the variables in the image name"}},
		{name: "required variable message does not leak values", dockerfile: "ARG T\nFROM ${NOPE:?$T}",
			buildArgs: map[string]string{"T": "S3CRET-VALUE"}, want: []string{"cannot expand the variables"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Check(context.Background(), Input{
				Dockerfile: []byte(tt.dockerfile),
				OrgID:      orgA,
				AppID:      appA1,
				BuildArgs:  tt.buildArgs,
				Lookup:     fakeLookup,
			})
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Check() = %v, want nil", err)
				}
				return
			}
			var v *Violation
			if !errors.As(err, &v) {
				t.Fatalf("Check() = %v (%T), want a *Violation", err, err)
			}
			msg := v.Error()
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("Check() = %q, want it to contain %q", msg, w)
				}
			}
			if tt.wantLine != 0 && v.Line != tt.wantLine {
				t.Errorf("Violation.Line = %d, want %d", v.Line, tt.wantLine)
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("Check() = %q, want one line", msg)
			}
			if strings.Contains(msg, "S3CRET") {
				t.Errorf("Check() = %q quotes a build-arg value", msg)
			}
		})
	}
}

func TestCheckLookupError(t *testing.T) {
	for _, df := range []string{
		"FROM lookup-fails:1",
		"FROM debian\nCOPY --from=lookup-fails:1 /a /a",
		"FROM debian\nONBUILD COPY --from=lookup-fails:1 /a /a",
	} {
		err := Check(context.Background(), Input{Dockerfile: []byte(df), OrgID: orgA, AppID: appA1, Lookup: fakeLookup})
		if err == nil {
			t.Fatalf("%q: Check() = nil, want the lookup error", df)
		}
		var v *Violation
		if errors.As(err, &v) {
			t.Fatalf("%q: Check() = Violation %v, want a non-Violation error", df, err)
		}
		if !strings.Contains(err.Error(), "engine unreachable") {
			t.Errorf("%q: Check() = %v, want it to wrap the lookup error", df, err)
		}
	}
}

func TestCheckNilLookup(t *testing.T) {
	err := Check(context.Background(), Input{Dockerfile: []byte("FROM debian")})
	var v *Violation
	if err == nil || errors.As(err, &v) {
		t.Fatalf("Check() = %v, want a non-Violation error", err)
	}
}

func TestCheckAsksOncePerReference(t *testing.T) {
	calls := map[string]int{}
	lookup := func(ctx context.Context, ref string) (Image, bool, error) {
		calls[ref]++
		return fakeLookup(ctx, ref)
	}
	df := "FROM node:20-bookworm-slim AS a\nFROM node:20-bookworm-slim\nCOPY --from=node:20-bookworm-slim /a /a\nCOPY --from=a /a /a"
	if err := Check(context.Background(), Input{Dockerfile: []byte(df), OrgID: orgA, AppID: appA1, Lookup: lookup}); err != nil {
		t.Fatal(err)
	}
	if len(calls) != 1 || calls["node:20-bookworm-slim"] != 1 {
		t.Errorf("Lookup calls = %v, want node:20-bookworm-slim once", calls)
	}
}

func TestViolationTruncatesInstruction(t *testing.T) {
	long := "FROM debian\nADD http://127.0.0.1/" + strings.Repeat("a", 300) + " /x"
	err := Check(context.Background(), Input{Dockerfile: []byte(long), OrgID: orgA, AppID: appA1, Lookup: fakeLookup})
	var v *Violation
	if !errors.As(err, &v) {
		t.Fatalf("Check() = %v, want a *Violation", err)
	}
	if n := len([]rune(v.Instruction)); n > maxQuoted {
		t.Errorf("Instruction has %d runes, want at most %d", n, maxQuoted)
	}
	if !strings.HasSuffix(v.Instruction, "…") {
		t.Errorf("Instruction = %q, want a truncation mark", v.Instruction)
	}
}
