package codec

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/grpc"

	"github.com/skypanel/skypanel/secrets"
)

// The gateway's interceptor between a node and Temporal: the node's answers (result and
// failure) reach Temporal under the platform key only, and its tasks reach the node under its
// own key only.
func TestResealInterceptorMovesPayloadsBetweenThePlatformAndTheNodeKey(t *testing.T) {
	platform, node := testKeyring(t, "k1"), testKeyring(t, "n1")
	platformDC, _ := EncryptionConverters(platform)
	nodeDC, nodeFC := EncryptionConverters(node)
	intercept, err := ResealInterceptor(platform, func(context.Context) (*secrets.Keyring, error) { return node, nil })
	require.NoError(t, err)

	// What the node answers: its result and failure, under its own key.
	result, err := nodeDC.ToPayloads("built sha256:abc")
	require.NoError(t, err)
	failure := nodeFC.ErrorToFailure(errors.New("node-side detail"))
	invoker := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error { return nil }
	completed := &workflowservice.RespondActivityTaskCompletedRequest{Result: result}
	require.NoError(t, intercept(context.Background(), "/RespondActivityTaskCompleted", completed, &workflowservice.RespondActivityTaskCompletedResponse{}, nil, invoker))
	var got string
	require.NoError(t, platformDC.FromPayloads(completed.Result, &got), "Temporal must get the result under the platform key")
	require.Equal(t, "built sha256:abc", got)
	require.Error(t, nodeDC.FromPayloads(completed.Result, &got), "the node's key must not open what Temporal stores")

	failed := &workflowservice.RespondActivityTaskFailedRequest{Failure: failure}
	require.NoError(t, intercept(context.Background(), "/RespondActivityTaskFailed", failed, &workflowservice.RespondActivityTaskFailedResponse{}, nil, invoker))
	_, platformFC := EncryptionConverters(platform)
	require.ErrorContains(t, platformFC.FailureToError(failed.Failure), "node-side detail")

	// What Temporal hands the node: a task whose input the platform sealed.
	input, err := platformDC.ToPayloads(map[string]string{"AppID": "app-1"})
	require.NoError(t, err)
	poll := func(_ context.Context, _ string, _, reply any, _ *grpc.ClientConn, _ ...grpc.CallOption) error {
		reply.(*workflowservice.PollActivityTaskQueueResponse).Input = input
		return nil
	}
	task := &workflowservice.PollActivityTaskQueueResponse{}
	require.NoError(t, intercept(context.Background(), "/PollActivityTaskQueue", &workflowservice.PollActivityTaskQueueRequest{}, task, nil, poll))
	var in map[string]string
	require.NoError(t, nodeDC.FromPayloads(task.Input, &in), "the node must open its task with its own key")
	require.Equal(t, "app-1", in["AppID"])
	require.Error(t, platformDC.FromPayloads(task.Input, &in), "the task must not reach the node under the platform key")
}

// Plaintext passes (the workers refuse it themselves); a payload neither side sealed fails.
func TestResealPassesPlaintextAndRefusesAForeignKey(t *testing.T) {
	platform, node, stranger := testKeyring(t, "k1"), testKeyring(t, "n1"), testKeyring(t, "n2")
	plain, err := converter.GetDefaultDataConverter().ToPayload("x")
	require.NoError(t, err)
	out, err := Reseal([]*commonpb.Payload{plain}, node, platform)
	require.NoError(t, err)
	require.Same(t, plain, out[0])

	foreign, err := NewPayloadCodec(stranger).Encode([]*commonpb.Payload{plain})
	require.NoError(t, err)
	_, err = Reseal(foreign, node, platform)
	require.ErrorContains(t, err, "re-seal payload 0")
}
