// Package codec encrypts every Temporal payload and failure message under the platform's
// keyring (AES-GCM envelopes of the secrets package), and serves the codec endpoint the Temporal
// Web UI uses to show them to an authenticated administrator.
package codec

import (
	"fmt"

	commonpb "go.temporal.io/api/common/v1"
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

type payloadCodec struct {
	ring *secrets.Keyring
}

// NewPayloadCodec returns the codec that encrypts every Temporal payload under ring's primary key,
// so workflow inputs, results and failures are opaque in the server's history.
func NewPayloadCodec(ring *secrets.Keyring) converter.PayloadCodec {
	if ring == nil {
		panic("temporal: NewPayloadCodec needs a keyring")
	}
	return &payloadCodec{ring: ring}
}

// Encode seals each whole payload, metadata included, so not even the original encoding leaks.
func (c *payloadCodec) Encode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	encoded := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		plain, err := proto.Marshal(p)
		if err != nil {
			return payloads, fmt.Errorf("encrypt temporal payload %d: marshal: %w", i, err)
		}
		sealed, err := c.ring.EncryptBytes(plain, payloadAssociatedData)
		if err != nil {
			return payloads, fmt.Errorf("encrypt temporal payload %d: %w", i, err)
		}
		encoded[i] = &commonpb.Payload{
			Metadata: map[string][]byte{
				converter.MetadataEncoding: []byte(EncryptedPayloadEncoding),
				MetadataEncryptionKeyID:    []byte(c.ring.PrimaryID()),
			},
			Data: sealed,
		}
	}
	return encoded, nil
}

// Decode opens encrypted payloads and passes every other payload through unchanged, so histories
// written before encryption was turned on still read. A payload that does not open fails the
// workflow task rather than the workflow: the usual cause is a key dropped from
// SKYPANEL_SECRET_KEY too early, and the task succeeds on retry once the key is put back.
func (c *payloadCodec) Decode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	decoded := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		if string(p.GetMetadata()[converter.MetadataEncoding]) != EncryptedPayloadEncoding {
			decoded[i] = p
			continue
		}
		plain, err := c.ring.DecryptBytes(p.GetData(), payloadAssociatedData)
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
	dataConverter := converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), NewPayloadCodec(ring))
	failureConverter := sdktemporal.NewDefaultFailureConverter(sdktemporal.DefaultFailureConverterOptions{
		DataConverter:          dataConverter,
		EncodeCommonAttributes: true,
	})
	return dataConverter, failureConverter
}
