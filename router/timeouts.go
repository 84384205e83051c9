package router

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Timeouts maps command patterns to their timeout. As a flag value it reads
// and prints "pattern=duration,pattern=duration".
type Timeouts map[string]time.Duration

// String implements flag.Value.
func (t Timeouts) String() string {
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + t[k].String()
	}
	return strings.Join(parts, ",")
}

// Set implements flag.Value.
func (t *Timeouts) Set(s string) error {
	m := Timeouts{}
	for _, part := range strings.Split(s, ",") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		name, dur, ok := strings.Cut(part, "=")
		name = strings.ToLower(strings.Join(strings.Fields(name), " "))
		if !ok || name == "" {
			return fmt.Errorf("%q is not pattern=duration", part)
		}
		d, err := time.ParseDuration(strings.TrimSpace(dur))
		if err != nil || d <= 0 {
			return fmt.Errorf("%q: the timeout must be a positive duration such as 90s", part)
		}
		m[name] = d
	}
	*t = m
	return nil
}

func (t Timeouts) longest() time.Duration {
	var l time.Duration
	for _, d := range t {
		l = max(l, d)
	}
	return l
}

// timeoutOf returns the timeout of the command with pattern name.
func (r *Router) timeoutOf(name string) time.Duration {
	if d, ok := r.cfg.CommandTimeouts[name]; ok {
		return d
	}
	return r.cfg.Timeout
}
