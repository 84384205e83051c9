// Package boot does what every botmesh binary does before its own work:
// parse flags (each also read from BOTMESH_<FLAG>) and build the logger.
// It knows the NATS flags (package natsconn); mesh.Parse adds go-micro's
// for the parts that speak it. boot does not import go-micro, so that parts
// that only speak NATS do not carry it.
//
// A NATS address counts as given when --nats_url is on the command line or
// BOTMESH_NATS_URL is set (even to the default value), or when the binary's
// Spec.NATS default is not nats://127.0.0.1:4222. When none is given and
// --find_nats is (it is off by default), the mesh looks for NATS
// (natsconn.Config.FindNATS): a server on 127.0.0.1:4222 first, then one
// announced on the LAN with mDNS (--nats_announce), which gets this
// process's credentials only if its TLS certificate verifies;
// --nats_lan_wait=0 turns the LAN search off.
package boot

import (
	"flag"
	"io"
	"log/slog"
	"os"

	"github.com/botmesh/botmesh/sdk/flagenv"
	"github.com/botmesh/botmesh/sdk/logging"
	"github.com/botmesh/botmesh/sdk/natsconn"
)

// Spec says what a binary needs.
type Spec struct {
	// Name names the process in logs and its NATS connections.
	Name string
	// Args are the command-line arguments, without the program name.
	Args []string
	// LogTo receives the log (stderr; stdout may belong to the shell).
	LogTo io.Writer
	// LogLevel is the default of --log_level ("info" if empty).
	LogLevel string
	// NATS is the default NATS config (natsconn.DefaultConfig if nil).
	NATS *natsconn.Config
}

// Parse adds the NATS and log flags to fs (which may already hold the
// binary's own), parses the args and the environment, and returns the NATS
// config and the logger. It returns flag.ErrHelp after printing usage for
// -h.
func Parse(fs *flag.FlagSet, spec Spec) (natsconn.Config, *slog.Logger, error) {
	name := spec.Name
	cfg := natsconn.DefaultConfig()
	if spec.NATS != nil {
		cfg = *spec.NATS
	}
	cfg.Name = name
	cfg.RegisterFlags(fs)
	lcfg := logging.Config{Level: spec.LogLevel, Format: "text"}
	if lcfg.Level == "" {
		lcfg.Level = "info"
	}
	lcfg.RegisterFlags(fs)
	if err := flagenv.Parse(fs, spec.Args, os.LookupEnv); err != nil {
		return cfg, nil, err
	}
	if fs.NArg() > 0 {
		return cfg, nil, &ArgsError{Args: fs.Args()}
	}
	cfg.FindNATS = cfg.FindNATS && !NATSGiven(fs, spec) && cfg.LANWait > 0
	log, err := lcfg.New(spec.LogTo)
	if err != nil {
		return cfg, nil, err
	}
	return cfg, log.With("process", name), nil
}

// NATSGiven reports whether a NATS address was given to a parsed fs: the
// --nats_url flag on the command line or in the environment
// (BOTMESH_NATS_URL), or a default in spec.NATS other than the standard one.
func NATSGiven(fs *flag.FlagSet, spec Spec) bool {
	given := spec.NATS != nil && spec.NATS.NATSURL != natsconn.DefaultConfig().NATSURL
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "nats_url" {
			given = true
		}
	})
	return given
}

// ArgsError reports arguments left after the flags.
type ArgsError struct{ Args []string }

func (e *ArgsError) Error() string {
	return "unexpected arguments " + quote(e.Args) + " (flags start with --; see --help)"
}

func quote(s []string) string {
	out := ""
	for i, a := range s {
		if i > 0 {
			out += " "
		}
		out += "\"" + a + "\""
	}
	return out
}
