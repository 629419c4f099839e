package apiserver

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/skypanel/skypanel/db"
	"github.com/skypanel/skypanel/temporal/operations"
)

// fieldError is a 422 problem naming the request field at fault.
func fieldError(location, message string, value any) error {
	return huma.Error422UnprocessableEntity("validation failed: "+message, &huma.ErrorDetail{
		Location: location, Message: message, Value: value,
	})
}

// problem maps a store error onto an RFC 9457 problem. what names the resource ("application").
// Unknown errors are logged and answered with a generic 500 that leaks nothing.
func (s *Server) problem(ctx context.Context, what string, err error) error {
	var invalid *db.InvalidStateError
	var conflict *db.ConflictError
	var full *db.QueueFullError
	var ended *db.OperationNotActiveError
	var notCancellable *operations.NotCancellableError
	var noRoom *db.NoRoomError
	switch {
	case errors.Is(err, db.ErrNotFound):
		return huma.Error404NotFound(what + " not found")
	case errors.As(err, &full):
		return huma.NewError(http.StatusTooManyRequests, full.Error(), &huma.ErrorDetail{Location: "path.id", Message: "the application's queue is full", Value: full.Limit})
	case errors.As(err, &ended):
		return huma.Error409Conflict(ended.Error(), &huma.ErrorDetail{Location: "path.operationId", Message: "only a queued or running operation can be cancelled"})
	case errors.As(err, &notCancellable):
		return huma.Error409Conflict(notCancellable.Reason, &huma.ErrorDetail{Location: "path.operationId", Message: "this operation cannot be cancelled now"})
	case errors.Is(err, operations.ErrUnavailable):
		return huma.Error503ServiceUnavailable("the workflow service is unavailable; try again")
	case errors.As(err, &noRoom):
		location := "body.plan"
		if noRoom.Node != "" {
			location = "body.instances"
		}
		return huma.Error409Conflict(noRoom.Error(), &huma.ErrorDetail{Location: location, Message: "not enough memory unreserved", Value: noRoom.NeedMB})
	case errors.As(err, &invalid):
		return huma.Error409Conflict(invalid.Reason)
	case errors.As(err, &conflict):
		if conflict.InUse {
			return huma.Error409Conflict(what + " is still in use")
		}
		return huma.Error409Conflict(what + " already exists")
	}
	s.log.ErrorContext(ctx, "request failed", slog.String("resource", what), slog.Any("error", err))
	return huma.Error500InternalServerError("internal error")
}
