// Package flagenv lets every flag of a flag.FlagSet take its value from the
// environment, so that one name works on the command line and in a
// container's env file: the flag --nats_url reads BOTMESH_NATS_URL.
package flagenv

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
)

// Prefix is put before the upper-cased flag name to make its variable name.
const Prefix = "BOTMESH_"

// Name returns the environment variable that sets the flag called flagName.
func Name(flagName string) string {
	return Prefix + strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(flagName))
}

// Parse sets every flag of fs that the command line does not set from its
// environment variable (see Name), then parses args. lookup is usually
// os.LookupEnv. A flag given on the command line wins over the environment.
// Usage text gets the variable's name appended, so -help documents both.
func Parse(fs *flag.FlagSet, args []string, lookup func(string) (string, bool)) error {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		env := Name(f.Name)
		if !strings.Contains(f.Usage, env) {
			f.Usage += " (env " + env + ")"
		}
		v, ok := lookup(env)
		if !ok {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: %w", env, v, err))
		}
	})
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return fs.Parse(args)
}

// List returns a flag.Value that reads a comma-separated list into *p,
// dropping empty items and surrounding space.
func List(p *[]string) flag.Value { return listValue{p} }

type listValue struct{ p *[]string }

func (l listValue) String() string {
	if l.p == nil {
		return ""
	}
	return strings.Join(*l.p, ",")
}

func (l listValue) Set(v string) error {
	*l.p = nil
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l.p = append(*l.p, s)
		}
	}
	return nil
}
