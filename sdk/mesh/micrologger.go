package mesh

import (
	"context"
	"fmt"
	"log/slog"
	"sort"

	"go-micro.dev/v4/logger"
)

// NewMicroLogger returns a go-micro logger that writes to l, so go-micro's
// own messages share the process's log format and destination (go-micro's
// default logger prints its own format to stderr). Fatal is logged as an
// error and does not exit: a library must not end the process.
func NewMicroLogger(l *slog.Logger) logger.Logger {
	return &microLogger{log: l, opts: logger.Options{Level: logger.TraceLevel, Context: context.Background()}}
}

type microLogger struct {
	log  *slog.Logger
	opts logger.Options
}

func (m *microLogger) Init(opts ...logger.Option) error {
	for _, o := range opts {
		o(&m.opts)
	}
	return nil
}

func (m *microLogger) Options() logger.Options { return m.opts }

func (m *microLogger) Fields(fields map[string]interface{}) logger.Logger {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	args := make([]any, 0, 2*len(keys))
	for _, k := range keys {
		args = append(args, k, fields[k])
	}
	return &microLogger{log: m.log.With(args...), opts: m.opts}
}

func (m *microLogger) Log(level logger.Level, v ...interface{}) {
	m.emit(level, fmt.Sprint(v...))
}

func (m *microLogger) Logf(level logger.Level, format string, v ...interface{}) {
	m.emit(level, fmt.Sprintf(format, v...))
}

func (m *microLogger) emit(level logger.Level, msg string) {
	if !level.Enabled(m.opts.Level) {
		return
	}
	m.log.Log(context.Background(), slogLevel(level), msg)
}

func (m *microLogger) String() string { return "slog" }

func slogLevel(l logger.Level) slog.Level {
	switch {
	case l <= logger.DebugLevel:
		return slog.LevelDebug
	case l == logger.InfoLevel:
		return slog.LevelInfo
	case l == logger.WarnLevel:
		return slog.LevelWarn
	default:
		return slog.LevelError
	}
}
