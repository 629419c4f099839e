package nodegateway

import (
	"bytes"
	"errors"
	"testing"
)

func TestTaskTokenRoundTripsForItsNodeOnly(t *testing.T) {
	tokens := taskTokens{key: bytes.Repeat([]byte{7}, 32)}
	temporalToken := []byte("temporal's own task token")
	wrapped := tokens.wrap("node-a-id", temporalToken)
	got, err := tokens.unwrap("node-a-id", wrapped)
	if err != nil || !bytes.Equal(got, temporalToken) {
		t.Fatalf("unwrap by its node: %q %v", got, err)
	}
	if _, err := tokens.unwrap("node-b-id", wrapped); !errors.Is(err, errForeignTaskToken) {
		t.Errorf("unwrap by another node: %v, want errForeignTaskToken", err)
	}
}

func TestTaskTokenRefusesEveryForgery(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	tokens := taskTokens{key: key}
	temporalToken := []byte("temporal's own task token")
	wrapped := tokens.wrap("a", temporalToken)
	forgeries := map[string][]byte{
		"temporal's own token":         temporalToken,
		"empty":                        nil,
		"another key's":                taskTokens{key: bytes.Repeat([]byte{8}, 32)}.wrap("a", temporalToken),
		"another version":              append([]byte{2}, wrapped[1:]...),
		"truncated MAC":                wrapped[:len(wrapped)-1],
		"only a header and MAC":        wrapped[:2+1],
		"node id length past the body": append([]byte{1, 200}, wrapped[2:]...),
	}
	// B's token relabelled as A's (same length ids): the MAC covers the id.
	relabelled := tokens.wrap("b", temporalToken)
	relabelled[2] = 'a'
	forgeries["another node's token relabelled"] = relabelled
	for i := range wrapped {
		flipped := bytes.Clone(wrapped)
		flipped[i] ^= 0x01
		if _, err := tokens.unwrap("a", flipped); err == nil {
			t.Errorf("a token with byte %d flipped was accepted", i)
		}
	}
	for name, forged := range forgeries {
		if _, err := tokens.unwrap("a", forged); !errors.Is(err, errForeignTaskToken) {
			t.Errorf("%s: %v, want errForeignTaskToken", name, err)
		}
	}
}
