package apiserver

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"github.com/skypanel/skypanel/secrets"
)

// A node never opens the platform's sealed values itself. It holds keys of its own
// (POST /agent/keys) and asks the API to re-seal the values an app needs under its newest key
// (POST /agent/env/open), which the API does only for an app placed on that node or being moved
// to it. A compromised node opens the secrets of its own apps, and nothing else.

type nodeKeysInput struct {
	Body struct {
		Rotate bool `json:"rotate,omitempty" doc:"make a new key, the one values are sealed with from now on"`
	}
}

type nodeKeysOutput struct {
	Body struct {
		Keyring string `json:"keyring" doc:"the node's keys, newest first, as id:base64 entries: keep them in memory only"`
	}
}

type sealedVarBody struct {
	Key       string `json:"key" minLength:"1" maxLength:"256"`
	Sealed    string `json:"sealed" minLength:"1" maxLength:"200000"`
	BuildTime bool   `json:"build_time,omitempty"`
}

type openEnvInput struct {
	Body struct {
		AppID string          `json:"app_id" format:"uuid"`
		Vars  []sealedVarBody `json:"vars" maxItems:"1000" doc:"the app's values sealed under the platform key, as the task carried them"`
	}
}

type openEnvOutput struct {
	Body struct {
		Vars []sealedVarBody `json:"vars" doc:"the same values, sealed under the node's newest key"`
	}
}

func (s *Server) registerAgentSecrets() {
	s.registerAgentCertificateKeys()
	s.registerAgentDatabasePassword()
	nodeOp := func(id, path, summary string) huma.Operation {
		return s.nodeOp(id, http.MethodPost, path, summary, http.StatusOK)
	}
	huma.Register(s.api, nodeOp("agent-node-keys", "/api/paas/agent/keys", "The node's own keys (made on the first call; rotate adds one)"),
		func(ctx context.Context, in *nodeKeysInput) (*nodeKeysOutput, error) {
			nodeID, _ := ctx.Value(nodeKey).(string)
			ring, err := s.nodeKeyring(ctx, nodeID, in.Body.Rotate)
			if err != nil {
				return nil, s.problem(ctx, "node", err)
			}
			if in.Body.Rotate {
				s.log.InfoContext(ctx, "node key rotated", "node_id", nodeID, "key_id", ring.PrimaryID())
			}
			out := &nodeKeysOutput{}
			out.Body.Keyring = ring.Spec()
			return out, nil
		})
	huma.Register(s.api, nodeOp("agent-open-env", "/api/paas/agent/env/open",
		"Re-seal an app's environment values under the node's own key, for an app placed on the node"),
		func(ctx context.Context, in *openEnvInput) (*openEnvOutput, error) {
			nodeID, _ := ctx.Value(nodeKey).(string)
			appID := strings.ToLower(in.Body.AppID)
			placed, err := s.store.AppPlacedFor(ctx, appID, nodeID)
			if err != nil {
				return nil, s.problem(ctx, "application", err)
			}
			if !placed {
				s.log.WarnContext(ctx, "node asked for the environment of an app it does not hold", "node_id", nodeID, "app_id", appID)
				return nil, huma.Error403Forbidden("application " + appID + " is not placed on this node: its values are not this node's to open")
			}
			ring, err := s.nodeKeyring(ctx, nodeID, false)
			if err != nil {
				return nil, s.problem(ctx, "node", err)
			}
			out := &openEnvOutput{}
			out.Body.Vars = make([]sealedVarBody, len(in.Body.Vars))
			for i, v := range in.Body.Vars {
				label := secrets.AppEnvValue(appID, v.Key)
				plain, err := s.cfg.Keyring.Decrypt(v.Sealed, label)
				if err != nil {
					// Never the value: the key name and why (tampered, another app's, unknown key).
					return nil, huma.Error422UnprocessableEntity("a value does not open as this application's",
						&huma.ErrorDetail{Location: fmt.Sprintf("body.vars[%d].sealed", i), Message: fmt.Sprintf("%s: %s", v.Key, secrets.Explain(err))})
				}
				resealed, err := ring.Encrypt(plain, label)
				clear(plain)
				if err != nil {
					return nil, fmt.Errorf("seal %s for node %s: %w", v.Key, nodeID, err)
				}
				out.Body.Vars[i] = sealedVarBody{Key: v.Key, Sealed: resealed, BuildTime: v.BuildTime}
			}
			return out, nil
		})
}

type openCertificateKeysInput struct {
	Body struct {
		AppID          string `json:"app_id" format:"uuid"`
		Hostname       string `json:"hostname" minLength:"1" maxLength:"253"`
		DirectoryURL   string `json:"directory_url,omitempty" maxLength:"2048" doc:"the ACME directory the account key is for"`
		AccountKey     string `json:"account_key,omitempty" maxLength:"20000" doc:"the ACME account key, sealed under the platform key"`
		CertificateKey string `json:"certificate_key,omitempty" maxLength:"20000" doc:"the domain's certificate key, sealed under the platform key"`
	}
}

type openCertificateKeysOutput struct {
	Body struct {
		AccountKey     string `json:"account_key,omitempty" doc:"sealed under the node's newest key"`
		CertificateKey string `json:"certificate_key,omitempty" doc:"sealed under the node's newest key"`
	}
}

// registerAgentCertificateKeys lets a node have the keys of a certificate of a custom domain of
// an app placed on it re-sealed for itself: for the ACME order (the account key and the new
// certificate's key) and to install the certificate.
func (s *Server) registerAgentCertificateKeys() {
	op := s.nodeOp("agent-open-certificate-keys", http.MethodPost, "/api/paas/agent/certificates/open",
		"Re-seal a custom domain's certificate keys under the node's own key, for a domain of an app placed on the node", http.StatusOK)
	huma.Register(s.api, op, func(ctx context.Context, in *openCertificateKeysInput) (*openCertificateKeysOutput, error) {
		nodeID, _ := ctx.Value(nodeKey).(string)
		appID, hostname := strings.ToLower(in.Body.AppID), in.Body.Hostname
		placed, err := s.store.AppPlacedFor(ctx, appID, nodeID)
		if err != nil {
			return nil, s.problem(ctx, "application", err)
		}
		ofApp, err := s.store.DomainOfApp(ctx, appID, hostname)
		if err != nil {
			return nil, s.problem(ctx, "application", err)
		}
		if !placed || !ofApp {
			s.log.WarnContext(ctx, "node asked for the certificate keys of a domain it does not serve", "node_id", nodeID, "app_id", appID, "domain", hostname)
			return nil, huma.Error403Forbidden("the domain " + hostname + " is not of an application placed on this node: its keys are not this node's to open")
		}
		ring, err := s.nodeKeyring(ctx, nodeID, false)
		if err != nil {
			return nil, s.problem(ctx, "node", err)
		}
		reseal := func(sealed string, label []byte, location string) (string, error) {
			if sealed == "" {
				return "", nil
			}
			plain, err := s.cfg.Keyring.Decrypt(sealed, label)
			if err != nil {
				return "", huma.Error422UnprocessableEntity("a key does not open as this domain's",
					&huma.ErrorDetail{Location: location, Message: secrets.Explain(err)})
			}
			defer clear(plain)
			resealed, err := ring.Encrypt(plain, label)
			if err != nil {
				return "", fmt.Errorf("seal a certificate key for node %s: %w", nodeID, err)
			}
			return resealed, nil
		}
		out := &openCertificateKeysOutput{}
		if out.Body.AccountKey, err = reseal(in.Body.AccountKey, secrets.ACMEAccountKey(in.Body.DirectoryURL), "body.account_key"); err != nil {
			return nil, err
		}
		if out.Body.CertificateKey, err = reseal(in.Body.CertificateKey, secrets.CertificateKey(hostname), "body.certificate_key"); err != nil {
			return nil, err
		}
		return out, nil
	})
}

type openDatabasePasswordInput struct {
	Body struct {
		DatabaseID string `json:"database_id" format:"uuid"`
		Sealed     string `json:"sealed" minLength:"1" maxLength:"2000" doc:"the database's password sealed under the platform key, as the task carried it"`
	}
}

type openDatabasePasswordOutput struct {
	Body struct {
		Sealed string `json:"sealed" doc:"the same password, sealed under the node's newest key"`
	}
}

// registerAgentDatabasePassword lets the node that runs a managed database have its password
// re-sealed for itself, to start the database's container.
func (s *Server) registerAgentDatabasePassword() {
	op := s.nodeOp("agent-open-database-password", http.MethodPost, "/api/paas/agent/databases/open",
		"Re-seal a managed database's password under the node's own key, for a database placed on the node", http.StatusOK)
	huma.Register(s.api, op, func(ctx context.Context, in *openDatabasePasswordInput) (*openDatabasePasswordOutput, error) {
		nodeID, _ := ctx.Value(nodeKey).(string)
		databaseID := strings.ToLower(in.Body.DatabaseID)
		placed, err := s.store.DatabasePlacedFor(ctx, databaseID, nodeID)
		if err != nil {
			return nil, s.problem(ctx, "database", err)
		}
		if !placed {
			s.log.WarnContext(ctx, "node asked for the password of a database it does not run", "node_id", nodeID, "database_id", databaseID)
			return nil, huma.Error403Forbidden("database " + databaseID + " is not placed on this node: its password is not this node's to open")
		}
		ring, err := s.nodeKeyring(ctx, nodeID, false)
		if err != nil {
			return nil, s.problem(ctx, "node", err)
		}
		label := secrets.DatabasePassword(databaseID)
		plain, err := s.cfg.Keyring.Decrypt(in.Body.Sealed, label)
		if err != nil {
			return nil, huma.Error422UnprocessableEntity("the value does not open as this database's password",
				&huma.ErrorDetail{Location: "body.sealed", Message: secrets.Explain(err)})
		}
		defer clear(plain)
		out := &openDatabasePasswordOutput{}
		if out.Body.Sealed, err = ring.Encrypt(plain, label); err != nil {
			return nil, fmt.Errorf("seal a database password for node %s: %w", nodeID, err)
		}
		return out, nil
	})
}

// nodeKeyring is the node's keyring, newest key first (rotate: after adding a new key).
func (s *Server) nodeKeyring(ctx context.Context, nodeID string, rotate bool) (*secrets.Keyring, error) {
	if rotate {
		return s.nodeKeys.Rotate(ctx, nodeID)
	}
	return s.nodeKeys.Keyring(ctx, nodeID)
}
