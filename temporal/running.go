package temporal

import (
	"context"
	"errors"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
)

// WorkflowRunning returns a check of whether a workflow is still running (one Temporal does not
// know is not): how a stale app operation lock is told from a live one.
func WorkflowRunning(c client.Client) func(ctx context.Context, workflowID string) (bool, error) {
	return func(ctx context.Context, workflowID string) (bool, error) {
		resp, err := c.DescribeWorkflowExecution(ctx, workflowID, "")
		var notFound *serviceerror.NotFound
		if errors.As(err, &notFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		return resp.GetWorkflowExecutionInfo().GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, nil
	}
}
