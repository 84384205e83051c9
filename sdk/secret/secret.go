// Package secret keeps passwords and tokens out of logs, errors and --help:
// a Value prints, logs and marshals as "[redacted]", and only Reveal gives
// the text.
package secret

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
)

// Value is a secret. As a flag.Value its default shows as empty in --help
// and setting it never fails, so the secret cannot appear in a flag error.
type Value string

// Set implements flag.Value.
func (v *Value) Set(s string) error { *v = Value(s); return nil }

// String implements flag.Value and fmt.Stringer without showing the secret.
func (v Value) String() string {
	if v == "" {
		return ""
	}
	return "[redacted]"
}

// GoString hides the secret from %#v.
func (v Value) GoString() string { return `"` + v.String() + `"` }

// LogValue implements slog.LogValuer without showing the secret.
func (v Value) LogValue() slog.Value { return slog.StringValue(v.String()) }

// MarshalText hides the secret from encoders.
func (v Value) MarshalText() ([]byte, error) { return []byte(v.String()), nil }

// Reveal returns the secret, for the one place that needs it.
func (v Value) Reveal() string { return string(v) }

// FromFile reads a secret from a file (a mounted Kubernetes or compose
// secret), without its surrounding white space.
func FromFile(path string) (Value, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("secret file: %w", err)
	}
	return Value(strings.TrimSpace(string(b))), nil
}
