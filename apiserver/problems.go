package apiserver

import (
	"context"
	"errors"
	"log/slog"

	"github.com/danielgtaylor/huma/v2"

	"github.com/skypanel/skypanel/db"
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
	var busy *db.BusyError
	var invalid *db.InvalidStateError
	var conflict *db.ConflictError
	switch {
	case errors.Is(err, db.ErrNotFound):
		return huma.Error404NotFound(what + " not found")
	case errors.As(err, &busy):
		return huma.Error409Conflict(busy.Error(), &huma.ErrorDetail{Location: "path.id", Message: "wait for workflow " + busy.WorkflowID + " to finish"})
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
