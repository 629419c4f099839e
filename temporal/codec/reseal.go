package codec

import (
	"context"
	"fmt"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/proxy"
	"go.temporal.io/sdk/converter"
	"google.golang.org/grpc"

	"github.com/skypanel/skypanel/secrets"
)

// Reseal moves encrypted payloads from one keyring to another without looking inside them: the
// node gateway opens what the platform sealed and seals it again under the polling node's own
// key, and the other way round for what the node answers. A payload that is not encrypted
// passes unchanged (headers; the workers refuse a plaintext input themselves). A payload that
// from does not open fails the whole call, naming its position, never its content.
func Reseal(payloads []*commonpb.Payload, from, to *secrets.Keyring) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		if string(p.GetMetadata()[converter.MetadataEncoding]) != EncryptedPayloadEncoding {
			out[i] = p
			continue
		}
		plain, err := from.DecryptBytes(p.GetData(), payloadAssociatedData)
		if err != nil {
			return payloads, fmt.Errorf("re-seal payload %d: %s", i, secrets.Explain(err))
		}
		sealed, err := to.EncryptBytes(plain, payloadAssociatedData)
		clear(plain)
		if err != nil {
			return payloads, fmt.Errorf("re-seal payload %d: %w", i, err)
		}
		out[i] = &commonpb.Payload{
			Metadata: map[string][]byte{
				converter.MetadataEncoding: []byte(EncryptedPayloadEncoding),
				MetadataEncryptionKeyID:    []byte(to.PrimaryID()),
			},
			Data: sealed,
		}
	}
	return out, nil
}

// NodeKeyring finds the keyring of the node a gateway call is made for (from its context); nil
// and no error for a call made for no node (the gateway's own), whose payloads pass as they are.
type NodeKeyring func(ctx context.Context) (*secrets.Keyring, error)

// ResealInterceptor is the node gateway's client interceptor toward the Temporal frontend:
// what a node sends (responds, heartbeats) is re-sealed from its own key to the platform's,
// and what Temporal answers it (its tasks) from the platform's key to the node's. The histories
// keep the platform key only; a node never holds it.
func ResealInterceptor(platform *secrets.Keyring, nodeKeyring NodeKeyring) (grpc.UnaryClientInterceptor, error) {
	visit := func(toPlatform bool) *proxy.VisitPayloadsOptions {
		return &proxy.VisitPayloadsOptions{
			SkipSearchAttributes: true,
			Visitor: func(vc *proxy.VisitPayloadsContext, payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
				node, err := nodeKeyring(vc.Context)
				if err != nil || node == nil {
					return payloads, err
				}
				if toPlatform {
					return Reseal(payloads, node, platform)
				}
				return Reseal(payloads, platform, node)
			},
		}
	}
	return proxy.NewPayloadVisitorInterceptor(proxy.PayloadVisitorInterceptorOptions{Outbound: visit(true), Inbound: visit(false)})
}
