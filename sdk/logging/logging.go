// Package logging builds the process logger (log/slog) from two flags that
// every botmesh binary shares.
package logging

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// Config selects the level and format of the process log.
type Config struct {
	// Level is debug, info, warn or error.
	Level string
	// Format is text (logfmt) or json.
	Format string
}

// RegisterFlags adds --log_level and --log_format to fs with c's values as
// defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Level, "log_level", c.Level, "log level: debug, info, warn or error")
	fs.StringVar(&c.Format, "log_format", c.Format, "log format: text or json")
}

// New returns a logger writing to w (normally stderr; stdout belongs to the
// shell input). Repeated warnings and errors are counted rather than written
// each time (Dedupe, keyed by DefaultDedupeKeys).
func (c Config) New(w io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.Level)); err != nil {
		return nil, fmt.Errorf("log_level %q is not one of debug, info, warn, error", c.Level)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	var h slog.Handler
	switch strings.ToLower(c.Format) {
	case "", "text":
		h = slog.NewTextHandler(w, opts)
	case "json":
		h = slog.NewJSONHandler(w, opts)
	default:
		return nil, errors.New("log_format must be text or json, not " + fmt.Sprintf("%q", c.Format))
	}
	return slog.New(Dedupe(h, &DedupeOptions{Keys: DefaultDedupeKeys})), nil
}
