package ghconnect_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/skypanel/skypanel/apiserver/ghconnect"
	"github.com/skypanel/skypanel/testsuite/fakegithub"
)

func TestVerifySignature(t *testing.T) {
	secret := []byte("hook-secret")
	body := fakegithub.PushPayload("octo/app", "main", strings.Repeat("0", 40), strings.Repeat("a", 40), "m")
	good := fakegithub.Sign(secret, body)

	require.NoError(t, ghconnect.VerifySignature(secret, body, good))

	require.ErrorIs(t, ghconnect.VerifySignature([]byte("other-secret"), body, good), ghconnect.ErrBadSignature)
	require.ErrorIs(t, ghconnect.VerifySignature(secret, append([]byte(" "), body...), good), ghconnect.ErrBadSignature, "a changed body")
	require.ErrorIs(t, ghconnect.VerifySignature(secret, body, ""), ghconnect.ErrNoSignature)

	// An empty secret never verifies, even a signature made with the empty key.
	require.Error(t, ghconnect.VerifySignature(nil, body, fakegithub.Sign(nil, body)))
	require.Error(t, ghconnect.VerifySignature([]byte{}, body, fakegithub.Sign([]byte{}, body)))

	hexSum := strings.TrimPrefix(good, "sha256=")
	for name, header := range map[string]string{
		"sha1 scheme":   "sha1=" + hexSum,
		"no scheme":     hexSum,
		"not hex":       "sha256=" + strings.Repeat("zz", 32),
		"short":         "sha256=" + hexSum[:62],
		"long":          good + "00",
		"uppercase key": "SHA256=" + hexSum,
		"scheme only":   "sha256=",
	} {
		require.ErrorIs(t, ghconnect.VerifySignature(secret, body, header), ghconnect.ErrBadSignature, name)
	}
}

func TestParsePush(t *testing.T) {
	before, after := strings.Repeat("1", 40), strings.Repeat("ab", 20)

	ev, err := ghconnect.ParsePush(fakegithub.PushPayload("octo/app", "feature/x", before, after, "fix: things"))
	require.NoError(t, err)
	require.Equal(t, ghconnect.PushEvent{
		Ref: "refs/heads/feature/x", Branch: "feature/x", Before: before, After: after,
		RepositoryFullName: "octo/app", HeadCommitMessage: "fix: things", Pusher: "octo",
	}, ev)

	ev, err = ghconnect.ParsePush(fakegithub.PushPayload("octo/app", "refs/tags/v1.0", before, after, "tag"))
	require.NoError(t, err)
	require.Equal(t, "refs/tags/v1.0", ev.Ref)
	require.Empty(t, ev.Branch, "a tag is no branch")

	ev, err = ghconnect.ParsePush(fakegithub.PushPayload("octo/app", "gone", before, strings.Repeat("0", 40), ""))
	require.NoError(t, err)
	require.True(t, ev.Deleted)
	require.Equal(t, "gone", ev.Branch)

	for name, bad := range map[string]string{
		"short after":     strings.Repeat("a", 39),
		"uppercase after": strings.Repeat("AB", 20),
		"option as after": "--upload-pack=touch${IFS}/tmp/pwned" + strings.Repeat("a", 5),
		"empty after":     "",
	} {
		_, err := ghconnect.ParsePush(fakegithub.PushPayload("octo/app", "main", before, bad, "m"))
		require.Error(t, err, name)
	}
	_, err = ghconnect.ParsePush([]byte(`{"ref":"refs/heads/main","after":"` + after + `"}`))
	require.Error(t, err, "no repository")
	_, err = ghconnect.ParsePush([]byte(`not json`))
	require.Error(t, err)
}
