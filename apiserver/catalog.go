package apiserver

import (
	"context"
	"errors"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/skypanel/skypanel/activities/contract"
	"github.com/skypanel/skypanel/db"
)

// items is the shape of every list response.
type items[T any] struct {
	Body struct {
		Items []T `json:"items"`
	}
}

func listOf[T any](v []T) *items[T] {
	out := &items[T]{}
	out.Body.Items = v
	return out
}

type body[T any] struct {
	Body T
}

func bodyOf[T any](v T) *body[T] { return &body[T]{Body: v} }

// planFields are what an admin sets on a plan. Prices are integer minor units per hour.
type planFields struct {
	Slug              string `json:"slug" pattern:"^[a-z0-9][a-z0-9-]{0,62}$" doc:"URL-safe identifier, e.g. starter"`
	Name              string `json:"name" minLength:"1" maxLength:"100"`
	CPUMillis         int    `json:"cpu_millis" minimum:"10" maximum:"64000" doc:"CPU in thousandths of a core"`
	MemoryMB          int    `json:"memory_mb" minimum:"32" maximum:"1048576"`
	PricePerHourMinor int64  `json:"price_per_hour_minor" minimum:"0" doc:"Price per instance-hour in minor units (cents)"`
	Currency          string `json:"currency,omitempty" pattern:"^[A-Z]{3}$" default:"USD"`
	Active            *bool  `json:"active,omitempty" default:"true"`
	// BuildTimeoutSeconds bounds each build of the plan's apps.
	BuildTimeoutSeconds int `json:"build_timeout_seconds,omitempty" minimum:"60" maximum:"7200" default:"900" doc:"How long one build of an app on the plan may run, in seconds (60-7200, default 900); a longer build fails naming the limit"`
	// BuildDiskMB bounds what each build of the plan's apps writes.
	BuildDiskMB int `json:"build_disk_mb,omitempty" minimum:"64" maximum:"204800" default:"10240" doc:"How much disk one build of an app on the plan may fill, in MiB (64-204800, default 10240): its context and the layers its steps write; a build past it fails naming the limit"`
}

func (f planFields) plan() db.Plan {
	active := f.Active == nil || *f.Active
	currency := f.Currency
	if currency == "" {
		currency = "USD"
	}
	return db.Plan{Slug: f.Slug, Name: f.Name, CPUMillis: f.CPUMillis, MemoryMB: f.MemoryMB,
		PricePerHourMinor: f.PricePerHourMinor, Currency: currency, Active: active, BuildTimeoutSeconds: f.BuildTimeoutSeconds, BuildDiskMB: f.BuildDiskMB}
}

type runtimeFields struct {
	Slug       string `json:"slug" pattern:"^[a-z0-9][a-z0-9-]{0,62}$"`
	Name       string `json:"name" minLength:"1" maxLength:"100"`
	Kind       string `json:"kind" enum:"auto,node,python,php,dockerfile" doc:"Which buildpack builds apps of this runtime (auto: detect from the repository)"`
	Version    string `json:"version,omitempty" maxLength:"32" pattern:"^[A-Za-z0-9._-]*$"`
	BuildImage string `json:"build_image,omitempty" maxLength:"255" pattern:"^[a-z0-9][a-z0-9./:_@-]*$" doc:"Image the buildpack builds in, e.g. node:20-bookworm-slim"`
	RunImage   string `json:"run_image,omitempty" maxLength:"255" pattern:"^[a-z0-9][a-z0-9./:_@-]*$" doc:"Image apps run on"`
	Active     *bool  `json:"active,omitempty" default:"true"`
	// ReadOnlyRoot and WritablePaths default to the kind's setting (contract.DefaultRootFS):
	// a PUT that leaves them out sets the kind's default again, like every other field it omits.
	ReadOnlyRoot  *bool    `json:"read_only_root,omitempty" doc:"Run the runtime's apps on a read-only root filesystem, where only /tmp and writable_paths can be written. Default: true for node, python and php (what their buildpack images were tried with), false for dockerfile (arbitrary images) and auto (a repository's own Dockerfile; a detected stack uses its stack's runtime's setting). Used from each app's next instance start"`
	WritablePaths []string `json:"writable_paths,omitempty" maxItems:"8" doc:"Absolute, clean paths that stay writable on a read-only root besides /tmp, each an empty, size-bounded tmpfs at every start (hiding what the image has there); not /, /tmp, /proc, /sys or /dev or anything under them. Only with read_only_root. Default: the kind's (php: /var/run/apache2, /var/lock/apache2, /var/lib/php/sessions)"`
}

// rootFS is the setting the fields ask for: what they name, the kind's default for the rest.
func (f runtimeFields) rootFS() contract.RootFS {
	def := contract.DefaultRootFS(f.Kind)
	r := contract.RootFS{ReadOnly: def.ReadOnly, Writable: f.WritablePaths}
	if f.ReadOnlyRoot != nil {
		r.ReadOnly = *f.ReadOnlyRoot
	}
	if f.WritablePaths == nil && r.ReadOnly {
		r.Writable = def.Writable
	}
	return r
}

// Resolve answers 422 naming the field for a root filesystem setting the node would refuse.
func (f *runtimeFields) Resolve(_ huma.Context, prefix *huma.PathBuffer) []error {
	var errs []error
	if !f.rootFS().ReadOnly && len(f.WritablePaths) > 0 {
		errs = append(errs, &huma.ErrorDetail{Location: prefix.With("writable_paths"), Value: f.WritablePaths,
			Message: "writable paths apply to a read-only root only: set read_only_root to true or leave them out"})
	}
	seen := make(map[string]bool, len(f.WritablePaths))
	prefix.Push("writable_paths")
	defer prefix.Pop()
	for i, p := range f.WritablePaths {
		location := prefix.WithIndex(i)
		if err := contract.CheckWritablePath(p); err != nil {
			errs = append(errs, &huma.ErrorDetail{Location: location, Value: p, Message: err.Error()})
			continue
		}
		if seen[p] {
			errs = append(errs, &huma.ErrorDetail{Location: location, Value: p, Message: "named twice"})
		}
		seen[p] = true
	}
	return errs
}

func (f runtimeFields) runtime() db.Runtime {
	rootFS := f.rootFS()
	return db.Runtime{Slug: f.Slug, Name: f.Name, Kind: f.Kind, Version: f.Version, BuildImage: f.BuildImage, RunImage: f.RunImage,
		Active: f.Active == nil || *f.Active, ReadOnlyRoot: rootFS.ReadOnly, WritablePaths: rootFS.Writable}
}

type idPath struct {
	ID string `path:"id" maxLength:"64"`
}

func (s *Server) registerCatalog() {
	huma.Register(s.api, s.op("list-plans", http.MethodGet, "/api/paas/plans", "List the plans customers can choose", "catalog", 0, false),
		func(ctx context.Context, _ *struct{}) (*items[Plan], error) {
			plans, err := s.store.ListPlans(ctx, false)
			if err != nil {
				return nil, s.problem(ctx, "plan", err)
			}
			return listOf(viewsOf(plans, planView)), nil
		})
	huma.Register(s.api, s.op("list-runtimes", http.MethodGet, "/api/paas/runtimes", "List the runtimes customers can choose", "catalog", 0, false),
		func(ctx context.Context, _ *struct{}) (*items[Runtime], error) {
			runtimes, err := s.store.ListRuntimes(ctx, false)
			if err != nil {
				return nil, s.problem(ctx, "runtime", err)
			}
			return listOf(viewsOf(runtimes, runtimeView)), nil
		})
	huma.Register(s.api, s.op("list-regions", http.MethodGet, "/api/paas/regions", "List regions", "catalog", 0, false),
		func(ctx context.Context, _ *struct{}) (*items[Region], error) {
			regions, err := s.store.ListRegions(ctx)
			if err != nil {
				return nil, s.problem(ctx, "region", err)
			}
			return listOf(viewsOf(regions, regionView)), nil
		})

	huma.Register(s.api, s.op("admin-list-plans", http.MethodGet, "/api/paas/admin/plans", "List all plans, inactive ones too", "admin", 0, true),
		func(ctx context.Context, _ *struct{}) (*items[Plan], error) {
			plans, err := s.store.ListPlans(ctx, true)
			if err != nil {
				return nil, s.problem(ctx, "plan", err)
			}
			return listOf(viewsOf(plans, planView)), nil
		})
	huma.Register(s.api, s.op("admin-create-plan", http.MethodPost, "/api/paas/admin/plans", "Create a plan", "admin", http.StatusCreated, true),
		func(ctx context.Context, in *body[planFields]) (*body[Plan], error) {
			plan, err := s.store.CreatePlan(ctx, in.Body.plan())
			if errors.Is(err, db.ErrConflict) {
				return nil, huma.Error409Conflict("a plan with this slug already exists", &huma.ErrorDetail{Location: "body.slug", Value: in.Body.Slug})
			}
			if err != nil {
				return nil, s.problem(ctx, "plan", err)
			}
			return bodyOf(planView(plan)), nil
		})
	huma.Register(s.api, s.op("admin-update-plan", http.MethodPut, "/api/paas/admin/plans/{id}", "Replace a plan's fields; running apps pick up new limits at their next deploy", "admin", 0, true),
		func(ctx context.Context, in *struct {
			ID   string `path:"id" maxLength:"64"`
			Body planFields
		}) (*body[Plan], error) {
			p := in.Body.plan()
			p.ID = in.ID
			plan, err := s.store.UpdatePlan(ctx, p)
			if errors.Is(err, db.ErrConflict) {
				return nil, huma.Error409Conflict("a plan with this slug already exists", &huma.ErrorDetail{Location: "body.slug", Value: in.Body.Slug})
			}
			if err != nil {
				return nil, s.problem(ctx, "plan", err)
			}
			return bodyOf(planView(plan)), nil
		})
	huma.Register(s.api, s.op("admin-delete-plan", http.MethodDelete, "/api/paas/admin/plans/{id}", "Delete a plan no application uses", "admin", http.StatusNoContent, true),
		func(ctx context.Context, in *idPath) (*struct{}, error) {
			if err := s.store.DeletePlan(ctx, in.ID); err != nil {
				return nil, s.problem(ctx, "plan", err)
			}
			return &struct{}{}, nil
		})

	huma.Register(s.api, s.op("admin-list-runtimes", http.MethodGet, "/api/paas/admin/runtimes", "List all runtimes", "admin", 0, true),
		func(ctx context.Context, _ *struct{}) (*items[Runtime], error) {
			runtimes, err := s.store.ListRuntimes(ctx, true)
			if err != nil {
				return nil, s.problem(ctx, "runtime", err)
			}
			return listOf(viewsOf(runtimes, runtimeView)), nil
		})
	huma.Register(s.api, s.op("admin-create-runtime", http.MethodPost, "/api/paas/admin/runtimes", "Create a runtime", "admin", http.StatusCreated, true),
		func(ctx context.Context, in *body[runtimeFields]) (*body[Runtime], error) {
			rt, err := s.store.CreateRuntime(ctx, in.Body.runtime())
			if errors.Is(err, db.ErrConflict) {
				return nil, huma.Error409Conflict("a runtime with this slug already exists", &huma.ErrorDetail{Location: "body.slug", Value: in.Body.Slug})
			}
			if err != nil {
				return nil, s.problem(ctx, "runtime", err)
			}
			return bodyOf(runtimeView(rt)), nil
		})
	huma.Register(s.api, s.op("admin-update-runtime", http.MethodPut, "/api/paas/admin/runtimes/{id}", "Replace a runtime's fields (e.g. its images); apps pick them up at their next deploy", "admin", 0, true),
		func(ctx context.Context, in *struct {
			ID   string `path:"id" maxLength:"64"`
			Body runtimeFields
		}) (*body[Runtime], error) {
			rt, err := s.store.UpdateRuntime(ctx, in.ID, in.Body.runtime())
			if errors.Is(err, db.ErrConflict) {
				return nil, huma.Error409Conflict("a runtime with this slug already exists", &huma.ErrorDetail{Location: "body.slug", Value: in.Body.Slug})
			}
			if err != nil {
				return nil, s.problem(ctx, "runtime", err)
			}
			return bodyOf(runtimeView(rt)), nil
		})
}
