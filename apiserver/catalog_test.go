package apiserver

import (
	"context"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/humatest"

	"github.com/skypanel/skypanel/db"
)

// runtimeFieldsAPI accepts runtime fields the way the admin runtime routes do and answers what
// would be stored.
func runtimeFieldsAPI(t *testing.T) humatest.TestAPI {
	_, api := humatest.New(t)
	huma.Register(api, huma.Operation{OperationID: "put-runtime", Method: http.MethodPut, Path: "/runtimes/{id}"},
		func(_ context.Context, in *struct {
			ID   string `path:"id"`
			Body runtimeFields
		}) (*body[db.Runtime], error) {
			return bodyOf(in.Body.runtime()), nil
		})
	return api
}

func TestRuntimeRootFSDefaultsToTheKinds(t *testing.T) {
	yes, no := true, false
	for _, c := range []struct {
		f        runtimeFields
		readOnly bool
		writable []string
	}{
		{runtimeFields{Kind: "node"}, true, nil},
		{runtimeFields{Kind: "python"}, true, nil},
		{runtimeFields{Kind: "php"}, true, []string{"/var/run/apache2", "/var/lock/apache2", "/var/lib/php/sessions"}},
		{runtimeFields{Kind: "dockerfile"}, false, nil},
		{runtimeFields{Kind: "auto"}, false, nil},
		{runtimeFields{Kind: "php", ReadOnlyRoot: &no}, false, nil},
		{runtimeFields{Kind: "php", WritablePaths: []string{}}, true, []string{}},
		{runtimeFields{Kind: "php", WritablePaths: []string{"/srv/cache"}}, true, []string{"/srv/cache"}},
		{runtimeFields{Kind: "dockerfile", ReadOnlyRoot: &yes, WritablePaths: []string{"/data"}}, true, []string{"/data"}},
		{runtimeFields{Kind: "dockerfile", ReadOnlyRoot: &yes}, true, nil},
	} {
		rt := c.f.runtime()
		if rt.ReadOnlyRoot != c.readOnly || !reflect.DeepEqual(rt.WritablePaths, c.writable) {
			t.Errorf("%+v: read-only %v writable %#v, want %v %#v", c.f, rt.ReadOnlyRoot, rt.WritablePaths, c.readOnly, c.writable)
		}
	}
}

func TestRuntimeWritablePathsAreValidated(t *testing.T) {
	api := runtimeFieldsAPI(t)
	base := map[string]any{"slug": "php", "name": "PHP", "kind": "php", "read_only_root": true}
	with := func(fields map[string]any) map[string]any {
		out := map[string]any{}
		for k, v := range base {
			out[k] = v
		}
		for k, v := range fields {
			out[k] = v
		}
		return out
	}

	ok := api.Put("/runtimes/php", with(map[string]any{"writable_paths": []string{"/var/run/apache2", "/srv/app/cache"}}))
	if ok.Code != http.StatusOK || !strings.Contains(ok.Body.String(), `"/srv/app/cache"`) {
		t.Fatalf("valid paths: %d %s", ok.Code, ok.Body)
	}

	for _, c := range []struct {
		paths    []string
		location string
	}{
		{[]string{"var/run"}, "body.writable_paths[0]"},
		{[]string{"/var/run", "/"}, "body.writable_paths[1]"},
		{[]string{"/var/../etc"}, "body.writable_paths[0]"},
		{[]string{"/var//run"}, "body.writable_paths[0]"},
		{[]string{"/proc"}, "body.writable_paths[0]"},
		{[]string{"/sys/fs/cgroup"}, "body.writable_paths[0]"},
		{[]string{"/dev/shm"}, "body.writable_paths[0]"},
		{[]string{"/tmp"}, "body.writable_paths[0]"},
		{[]string{"/a", "/a"}, "body.writable_paths[1]"},
		{[]string{"/var/run,size=9g"}, "body.writable_paths[0]"},
		{[]string{"/1", "/2", "/3", "/4", "/5", "/6", "/7", "/8", "/9"}, "body.writable_paths"},
	} {
		resp := api.Put("/runtimes/php", with(map[string]any{"writable_paths": c.paths}))
		p := decodeProblem(t, resp, http.StatusUnprocessableEntity)
		if len(p.Errors) == 0 || p.Errors[0].Location != c.location {
			t.Errorf("paths %q: errors %+v, want one at %s", c.paths, p.Errors, c.location)
		}
	}

	// Writable paths without a read-only root would be ignored: refused, naming the field.
	for _, fields := range []map[string]any{
		{"read_only_root": false, "writable_paths": []string{"/data"}},
		{"kind": "dockerfile", "read_only_root": nil, "writable_paths": []string{"/data"}},
	} {
		in := with(fields)
		if in["read_only_root"] == nil {
			delete(in, "read_only_root")
		}
		p := decodeProblem(t, api.Put("/runtimes/x", in), http.StatusUnprocessableEntity)
		if len(p.Errors) == 0 || p.Errors[0].Location != "body.writable_paths" {
			t.Errorf("%v: errors %+v, want one at body.writable_paths", fields, p.Errors)
		}
	}
}
