package secrets

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// testEntry returns a fresh keyring entry and its base64 key, so tests can look for leaks.
func testEntry(t *testing.T, id string) (entry, encodedKey string) {
	t.Helper()
	entry, err := NewKeyEntry(id)
	require.NoError(t, err)
	_, encodedKey, _ = strings.Cut(entry, ":")
	return entry, encodedKey
}

func TestParseKeyringOrdersPrimaryFirstAndIgnoresWhitespace(t *testing.T) {
	k2, _ := testEntry(t, "k2")
	k1, _ := testEntry(t, "k1")
	ring, err := ParseKeyring("\n  " + k2 + " ,\n\t" + k1 + "\n,")
	require.NoError(t, err)
	require.Equal(t, "k2", ring.PrimaryID())
	require.Equal(t, []string{"k2", "k1"}, ring.IDs())
	require.True(t, ring.Has("k1"))
	require.False(t, ring.Has("k3"))
	require.Equal(t, k2+","+k1, ring.Spec())

	reparsed, err := ParseKeyring(ring.Spec())
	require.NoError(t, err)
	require.Equal(t, ring.Spec(), reparsed.Spec())
}

func TestParseKeyringRejectsBadSpecsWithoutLeakingKeys(t *testing.T) {
	good, goodKey := testEntry(t, "k1")
	short := base64.StdEncoding.EncodeToString([]byte("only-sixteen-byt"))
	cases := map[string]struct {
		spec string
		want string
	}{
		"empty":          {spec: " \n ", want: "no keys"},
		"commas only":    {spec: ",,", want: "no keys"},
		"duplicate id":   {spec: good + "," + good, want: "entry 2: key id k1 appears more than once"},
		"no colon":       {spec: good + "," + goodKey, want: "entry 2: want id:base64key"},
		"bad id":         {spec: "K_1:" + goodKey, want: "entry 1: key id must match"},
		"bad base64":     {spec: good + ",k2:" + goodKey + "!!", want: "entry 2 (key k2): key is not valid standard base64"},
		"wrong length":   {spec: "k3:" + short, want: "entry 1 (key k3): key is 16 bytes, want 32"},
		"key in id slot": {spec: goodKey + ":" + goodKey, want: "entry 1: key id must match"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := ParseKeyring(tc.spec)
			require.ErrorIs(t, err, ErrInvalidKeyring)
			require.ErrorContains(t, err, tc.want)
			require.NotContains(t, err.Error(), goodKey)
			require.NotContains(t, err.Error(), short)
		})
	}
}

func TestKeyringPrintsIdsNeverKeys(t *testing.T) {
	k2, key2 := testEntry(t, "k2")
	k1, key1 := testEntry(t, "k1")
	ring, err := ParseKeyring(k2 + "," + k1)
	require.NoError(t, err)
	require.Equal(t, "keyring(primary=k2, keys=k2,k1)", ring.String())

	printed := fmt.Sprintf("%v %+v %#v %s %v %+v", ring, ring, ring, ring, *ring, *ring)
	for _, key := range []string{key1, key2} {
		require.NotContains(t, printed, key)
		raw, err := base64.StdEncoding.DecodeString(key)
		require.NoError(t, err)
		require.NotContains(t, printed, fmt.Sprint(raw), "raw key bytes printed")
	}
}

func TestNewKeyEntryIsRandomAndValid(t *testing.T) {
	a, keyA := testEntry(t, "k1")
	_, keyB := testEntry(t, "k1")
	require.NotEqual(t, keyA, keyB)
	_, err := ParseKeyring(a)
	require.NoError(t, err)

	_, err = NewKeyEntry("Bad ID")
	require.Error(t, err)
}

func TestNewKeyIDCarriesTheDate(t *testing.T) {
	now := time.Date(2026, 11, 25, 23, 30, 0, 0, time.FixedZone("UTC-5", -5*3600))
	id, err := NewKeyID(now)
	require.NoError(t, err)
	require.Regexp(t, `^k20261126-[0-9a-f]{4}$`, id) // 23:30 at UTC-5 is the 26th in UTC
	require.True(t, keyIDPattern.MatchString(id))
	_, err = NewKeyEntry(id)
	require.NoError(t, err)
}
