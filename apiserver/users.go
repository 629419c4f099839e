package apiserver

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"github.com/skypanel/skypanel/db"
)

type createUserInput struct {
	Body struct {
		Email string `json:"email" format:"email" maxLength:"254" doc:"The customer's e-mail address; unique"`
		Name  string `json:"name" minLength:"1" maxLength:"100" doc:"Display name; also names the customer's organization"`
	}
}

type createUserOutput struct {
	Body struct {
		User  User   `json:"user"`
		Token string `json:"token" doc:"The customer's API token. Shown once: only its hash is stored."`
	}
}

func (s *Server) registerUsers() {
	huma.Register(s.api, s.op("create-customer", http.MethodPost, "/api/paas/admin/users",
		"Create a customer with its own organization and API token", "admin", http.StatusCreated, true),
		func(ctx context.Context, in *createUserInput) (*createUserOutput, error) {
			name := strings.TrimSpace(in.Body.Name)
			if name == "" {
				return nil, fieldError("body.name", "name must not be blank", in.Body.Name)
			}
			token, hash, err := NewUserToken()
			if err != nil {
				return nil, s.problem(ctx, "user", err)
			}
			user, err := s.store.CreateUser(ctx, strings.TrimSpace(in.Body.Email), name, db.RoleCustomer, hash)
			if errors.Is(err, db.ErrConflict) {
				return nil, huma.Error409Conflict("a user with this e-mail already exists",
					&huma.ErrorDetail{Location: "body.email", Message: "e-mail already registered", Value: in.Body.Email})
			}
			if err != nil {
				return nil, s.problem(ctx, "user", err)
			}
			out := &createUserOutput{}
			out.Body.User, out.Body.Token = userView(user), token
			return out, nil
		})
}
