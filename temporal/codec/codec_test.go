package codec

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	sdktemporal "go.temporal.io/sdk/temporal"
	"google.golang.org/protobuf/proto"

	"github.com/skypanel/skypanel/secrets"
)

func testKeyring(t *testing.T, ids ...string) *secrets.Keyring {
	t.Helper()
	entries := make([]string, len(ids))
	for i, id := range ids {
		entry, err := secrets.NewKeyEntry(id)
		require.NoError(t, err)
		entries[i] = entry
	}
	ring, err := secrets.ParseKeyring(strings.Join(entries, ","))
	require.NoError(t, err)
	return ring
}

type deployInput struct {
	AppID    string
	Password string
}

const canary = "canary-7f3e-do-not-store-in-plaintext"

func TestDataConverterEncryptsPayloads(t *testing.T) {
	ring := testKeyring(t, "k1")
	dc, _ := EncryptionConverters(ring)

	payload, err := dc.ToPayload(deployInput{AppID: "app-1", Password: canary})
	require.NoError(t, err)
	require.Equal(t, EncryptedPayloadEncoding, string(payload.GetMetadata()[converter.MetadataEncoding]))
	require.Equal(t, "k1", string(payload.GetMetadata()[MetadataEncryptionKeyID]))
	wire, err := proto.Marshal(payload)
	require.NoError(t, err)
	require.False(t, bytes.Contains(wire, []byte(canary)), "canary in plaintext in the encoded payload")
	require.False(t, bytes.Contains(wire, []byte("json/plain")), "inner encoding should be sealed too")

	var got deployInput
	require.NoError(t, dc.FromPayload(payload, &got))
	require.Equal(t, deployInput{AppID: "app-1", Password: canary}, got)
}

func TestFailureConverterEncryptsMessages(t *testing.T) {
	ring := testKeyring(t, "k1")
	_, fc := EncryptionConverters(ring)
	cause := fmt.Errorf("clone repo: %w", errors.New("token "+canary+" rejected"))
	appErr := sdktemporal.NewApplicationErrorWithCause("deploy failed: "+canary, "DeployFailed", cause)

	// The same error through the SDK default shows what this test guards against.
	plain, err := proto.Marshal(sdktemporal.GetDefaultFailureConverter().ErrorToFailure(appErr))
	require.NoError(t, err)
	require.True(t, bytes.Contains(plain, []byte(canary)))

	failure := fc.ErrorToFailure(appErr)
	wire, err := proto.Marshal(failure)
	require.NoError(t, err)
	require.False(t, bytes.Contains(wire, []byte(canary)), "canary in plaintext in the failure")

	back := fc.FailureToError(failure)
	require.ErrorContains(t, back, "deploy failed: "+canary)
	var backApp *sdktemporal.ApplicationError
	require.ErrorAs(t, back, &backApp)
	require.Equal(t, "DeployFailed", backApp.Type())
	require.ErrorContains(t, errors.Unwrap(back), canary+" rejected")
}

// A payload that is not encrypted comes from another client: refused, non-retryably, saying
// why; null payloads too (the codec seals those like any other).
func TestDecodeRefusesPlainPayloads(t *testing.T) {
	ring := testKeyring(t, "k1")
	for _, value := range []any{deployInput{AppID: "app-1"}, nil} {
		plain, err := converter.GetDefaultDataConverter().ToPayload(value)
		require.NoError(t, err)

		_, err = NewPayloadCodec(ring).Decode([]*commonpb.Payload{plain})
		var appErr *sdktemporal.ApplicationError
		require.ErrorAs(t, err, &appErr)
		require.Equal(t, ErrTypePlaintextPayload, appErr.Type())
		require.True(t, appErr.NonRetryable())
		require.ErrorContains(t, err, "not encrypted")

		dc, _ := EncryptionConverters(ring)
		var got deployInput
		require.Error(t, dc.FromPayload(plain, &got))
		require.Empty(t, got.AppID, "nothing decoded from a refused payload")
	}
}

// The migration switch (and the UI's codec endpoint) read histories recorded before
// encryption: plaintext passes through unchanged.
func TestDecodeWithAllowPlaintextPassesPlainPayloadsThrough(t *testing.T) {
	opts := Options{AllowPlaintext: true}
	plain, err := converter.GetDefaultDataConverter().ToPayload(deployInput{AppID: "app-1"})
	require.NoError(t, err)

	decoded, err := NewPayloadCodecWithOptions(testKeyring(t, "k1"), opts).Decode([]*commonpb.Payload{plain})
	require.NoError(t, err)
	require.Len(t, decoded, 1)
	require.True(t, proto.Equal(plain, decoded[0]))

	dc, _ := EncryptionConvertersWithOptions(testKeyring(t, "k1"), opts)
	var got deployInput
	require.NoError(t, dc.FromPayload(plain, &got), "histories from before encryption must still read")
	require.Equal(t, "app-1", got.AppID)
}

func TestDecodeFailsClosed(t *testing.T) {
	ring := testKeyring(t, "k1")
	codec := NewPayloadCodec(ring)
	plain, err := converter.GetDefaultDataConverter().ToPayload(canary)
	require.NoError(t, err)
	encoded, err := codec.Encode([]*commonpb.Payload{plain})
	require.NoError(t, err)

	tampered := proto.Clone(encoded[0]).(*commonpb.Payload)
	tampered.Data[len(tampered.Data)-1] ^= 0x01
	_, err = codec.Decode([]*commonpb.Payload{tampered})
	require.ErrorIs(t, err, secrets.ErrTampered)
	require.NotContains(t, err.Error(), canary)
	var taskFailure *converter.WorkflowTaskFailureError
	require.ErrorAs(t, err, &taskFailure, "a bad payload should fail the task, not the workflow")

	_, err = NewPayloadCodec(testKeyring(t, "k2")).Decode(encoded)
	require.ErrorIs(t, err, secrets.ErrUnknownKey)
	require.ErrorContains(t, err, "k1")

	truncated := proto.Clone(encoded[0]).(*commonpb.Payload)
	truncated.Data = truncated.Data[:10]
	_, err = codec.Decode([]*commonpb.Payload{truncated})
	require.ErrorIs(t, err, secrets.ErrMalformed)

	dc, _ := EncryptionConverters(ring)
	var got string
	require.ErrorIs(t, dc.FromPayload(tampered, &got), secrets.ErrTampered)
	require.Empty(t, got)
}

func TestDecodeAfterKeyRotation(t *testing.T) {
	oldRing := testKeyring(t, "k1")
	encoded, err := NewPayloadCodec(oldRing).Encode([]*commonpb.Payload{{Data: []byte("x")}})
	require.NoError(t, err)

	rotated, err := secrets.ParseKeyring(testKeyring(t, "k2").Spec() + "," + oldRing.Spec())
	require.NoError(t, err)
	decoded, err := NewPayloadCodec(rotated).Decode(encoded)
	require.NoError(t, err)
	require.Equal(t, []byte("x"), decoded[0].GetData())

	reencoded, err := NewPayloadCodec(rotated).Encode(decoded)
	require.NoError(t, err)
	require.Equal(t, "k2", string(reencoded[0].GetMetadata()[MetadataEncryptionKeyID]))
}
