package docker

import (
	"fmt"
	"strings"

	"go.temporal.io/sdk/temporal"

	"github.com/skypanel/skypanel/secrets"
)

// ErrTypeSecretUnavailable: a sealed value cannot be opened on this node (no keyring, a key
// removed before re-encryption finished, or a tampered value). Retrying does not help.
const ErrTypeSecretUnavailable = "SecretUnavailable"

func validateSealedVars(vars []SealedVar) error {
	seen := make(map[string]bool, len(vars))
	for _, v := range vars {
		if !envKeyPattern.MatchString(v.Key) {
			return invalidInput("invalid environment variable name %q: use A-Z, 0-9 and '_', not starting with a digit", v.Key)
		}
		if seen[v.Key] {
			return invalidInput("environment variable %s is given twice", v.Key)
		}
		seen[v.Key] = true
	}
	return nil
}

// openEnv opens the app's sealed variables (only the build-time ones when buildTime is set).
// Errors name the variable and the cause, never a value; the caller drops the map once the
// container or build has it.
func (a *Activities) openEnv(appID string, vars []SealedVar, buildTime bool) (map[string]string, error) {
	env := make(map[string]string, len(vars))
	for _, v := range vars {
		if buildTime && !v.BuildTime {
			continue
		}
		if a.Keyring == nil {
			return nil, temporal.NewNonRetryableApplicationError(
				"this node has no secret keyring (SKYPANEL_SECRET_KEY or --secret-key-file): it cannot open the app's environment",
				ErrTypeSecretUnavailable, nil)
		}
		plain, err := a.Keyring.Decrypt(v.Sealed, secrets.AppEnvValue(appID, v.Key))
		if err != nil {
			return nil, temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("environment variable %s cannot be opened on this node: %s", v.Key, secrets.Explain(err)),
				ErrTypeSecretUnavailable, nil)
		}
		if strings.ContainsRune(string(plain), 0) {
			return nil, invalidInput("environment variable %s contains a NUL character", v.Key)
		}
		env[v.Key] = string(plain)
	}
	return env, nil
}
