// Package codec encrypts every Temporal payload and failure message under the platform's
// keyring (AES-GCM envelopes of the secrets package), and serves the codec endpoint the Temporal
// Web UI uses to show them to an authenticated administrator.
package codec

import (
	"errors"
	"fmt"

	commonpb "go.temporal.io/api/common/v1"
	failurepb "go.temporal.io/api/failure/v1"
	"go.temporal.io/sdk/converter"
	sdktemporal "go.temporal.io/sdk/temporal"
	"google.golang.org/protobuf/proto"

	"github.com/skypanel/skypanel/secrets"
)

// Payload metadata written by the encryption codec. The key id is informational (the envelope
// carries its own); it lets an operator see in the UI which key a history still depends on.
const (
	EncryptedPayloadEncoding = "binary/encrypted"
	MetadataEncryptionKeyID  = "encryption-key-id"
)

// payloadAssociatedData binds envelopes to Temporal payloads: a secret sealed for a database row
// cannot be replayed as a payload, nor the other way round.
var payloadAssociatedData = []byte("temporal-payload")

// ErrTypePlaintextPayload is the type of the non-retryable error a worker fails a task with
// when its input is not encrypted.
const ErrTypePlaintextPayload = "PlaintextPayload"

// AllowPlaintextEnv is the migration switch (also --allow-plaintext-payloads): workers read
// unencrypted payloads, as histories recorded before encryption hold. Off by default.
const AllowPlaintextEnv = "SKYPANEL_ALLOW_PLAINTEXT_PAYLOADS"

// Options tune the codec.
type Options struct {
	// AllowPlaintext passes unencrypted payloads through Decode instead of refusing them: for
	// histories recorded before encryption (the migration switch), and for reading histories
	// (the UI's codec endpoint, replay tests), never for a worker in normal operation.
	AllowPlaintext bool
}

type payloadCodec struct {
	ring func() *secrets.Keyring // the keyring now (a node's changes when its key rotates)
	opts Options
}

// NewPayloadCodec returns the codec that encrypts every Temporal payload under ring's primary
// key, so workflow inputs, results and failures are opaque in the server's history, and that
// refuses to decode a payload that is not encrypted.
func NewPayloadCodec(ring *secrets.Keyring) converter.PayloadCodec {
	return NewPayloadCodecWithOptions(ring, Options{})
}

// NewPayloadCodecWithOptions is NewPayloadCodec tuned by opts.
func NewPayloadCodecWithOptions(ring *secrets.Keyring, opts Options) converter.PayloadCodec {
	if ring == nil {
		panic("temporal: NewPayloadCodec needs a keyring")
	}
	return &payloadCodec{ring: func() *secrets.Keyring { return ring }, opts: opts}
}

// Encode seals each whole payload, metadata included, so not even the original encoding leaks.
func (c *payloadCodec) Encode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	ring := c.ring()
	encoded := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		plain, err := proto.Marshal(p)
		if err != nil {
			return payloads, fmt.Errorf("encrypt temporal payload %d: marshal: %w", i, err)
		}
		sealed, err := ring.EncryptBytes(plain, payloadAssociatedData)
		if err != nil {
			return payloads, fmt.Errorf("encrypt temporal payload %d: %w", i, err)
		}
		encoded[i] = &commonpb.Payload{
			Metadata: map[string][]byte{
				converter.MetadataEncoding: []byte(EncryptedPayloadEncoding),
				MetadataEncryptionKeyID:    []byte(ring.PrimaryID()),
			},
			Data: sealed,
		}
	}
	return encoded, nil
}

// Decode opens encrypted payloads. A payload that is not encrypted was not written by a
// SkyPanel process (the API, the workers): some other client of the Temporal frontend started a
// workflow or answered a task with it. It is refused with a non-retryable error, so the workflow
// or activity fails before its code runs and changes nothing; with Options.AllowPlaintext it
// passes through unchanged (histories written before encryption was turned on).
//
// A payload that is encrypted but does not open fails the workflow task rather than the
// workflow: the usual cause is a key dropped from SKYPANEL_SECRET_KEY too early, and the task
// succeeds on retry once the key is put back.
func (c *payloadCodec) Decode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	decoded := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		if encoding := string(p.GetMetadata()[converter.MetadataEncoding]); encoding != EncryptedPayloadEncoding {
			if !c.opts.AllowPlaintext {
				return payloads, sdktemporal.NewNonRetryableApplicationError(fmt.Sprintf(
					"refused: payload %d is not encrypted (encoding %q); SkyPanel takes only payloads sealed under the platform key, "+
						"so a workflow or task from another client changes nothing (histories recorded before encryption: %s=1, docs/secrets.md)",
					i, encoding, AllowPlaintextEnv), ErrTypePlaintextPayload, nil)
			}
			decoded[i] = p
			continue
		}
		plain, err := c.ring().DecryptBytes(p.GetData(), payloadAssociatedData)
		if err != nil {
			return payloads, converter.NewWorkflowTaskFailureError(fmt.Errorf("decrypt temporal payload %d: %w", i, err))
		}
		original := &commonpb.Payload{}
		if err := proto.Unmarshal(plain, original); err != nil {
			return payloads, converter.NewWorkflowTaskFailureError(fmt.Errorf("decrypt temporal payload %d: unmarshal: %w", i, err))
		}
		decoded[i] = original
	}
	return decoded, nil
}

// EncryptionConverters returns the data converter and failure converter every client and worker
// must share (ClientConfig.DataConverter and ClientConfig.FailureConverter). The failure converter
// moves error messages and stack traces into an encrypted payload; without it they would sit in
// plaintext in the history even though every other payload is encrypted.
func EncryptionConverters(ring *secrets.Keyring) (converter.DataConverter, converter.FailureConverter) {
	return EncryptionConvertersWithOptions(ring, Options{})
}

// EncryptionConvertersWithOptions is EncryptionConverters with the codec tuned by opts.
func EncryptionConvertersWithOptions(ring *secrets.Keyring, opts Options) (converter.DataConverter, converter.FailureConverter) {
	if ring == nil {
		panic("temporal: EncryptionConverters needs a keyring")
	}
	return EncryptionConvertersFrom(func() *secrets.Keyring { return ring }, opts)
}

// EncryptionConvertersFrom is EncryptionConverters for a keyring that changes: current is asked
// for it at each encode and decode (a node's own keys, which rotate).
func EncryptionConvertersFrom(current func() *secrets.Keyring, opts Options) (converter.DataConverter, converter.FailureConverter) {
	dataConverter := converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), &payloadCodec{ring: current, opts: opts})
	failureConverter := sdktemporal.NewDefaultFailureConverter(sdktemporal.DefaultFailureConverterOptions{
		DataConverter:          dataConverter,
		EncodeCommonAttributes: true,
	})
	return dataConverter, refusalFailureConverter{failureConverter}
}

// refusalFailureConverter reports a plaintext refusal as itself. The SDK wraps an input that
// does not decode in an error of its own ("unable to decode the activity function input
// payload …"), which it reports as retryable: the refused activity would be tried again and
// again, refused each time. Reported as the codec's own non-retryable error, it fails at once.
type refusalFailureConverter struct {
	converter.FailureConverter
}

func (c refusalFailureConverter) ErrorToFailure(err error) *failurepb.Failure {
	var refusal *sdktemporal.ApplicationError
	if errors.As(err, &refusal) && refusal.Type() == ErrTypePlaintextPayload {
		err = refusal
	}
	return c.FailureConverter.ErrorToFailure(err)
}
