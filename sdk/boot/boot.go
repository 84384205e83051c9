// Package boot does what every botmesh binary does before its own work:
// parse flags (each also read from BOTMESH_<FLAG>), build the logger and
// connect to the mesh.
//
// A NATS address counts as given when --nats_url is on the command line or
// BOTMESH_NATS_URL is set (even to the default value), or when the binary's
// Spec.Mesh default is not nats://127.0.0.1:4222. When none is given and
// --find_nats is (it is off by default), the mesh looks for NATS
// (mesh.Config.FindNATS): a server on 127.0.0.1:4222 first, then one
// announced on the LAN with mDNS (--nats_announce), which gets this
// process's credentials only if its TLS certificate verifies;
// --nats_lan_wait=0 turns the LAN search off.
package boot

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"os"

	"github.com/botmesh/botmesh/sdk/flagenv"
	"github.com/botmesh/botmesh/sdk/logging"
	"github.com/botmesh/botmesh/sdk/mesh"
	microlog "go-micro.dev/v4/logger"
)

// Spec says what a binary needs.
type Spec struct {
	// Name names the process in logs and its NATS connections.
	Name string
	// Args are the command-line arguments, without the program name.
	Args []string
	// LogTo receives the log (stderr; stdout may belong to the shell).
	LogTo io.Writer
	// NATSOnly leaves out the go-micro flags (registry, transport,
	// namespace), for parts that only speak NATS.
	NATSOnly bool
	// LogLevel is the default of --log_level ("info" if empty).
	LogLevel string
	// Mesh is the default mesh config (mesh.DefaultConfig if nil).
	Mesh *mesh.Config
}

// Parse adds the mesh and log flags to fs (which may already hold the
// binary's own), parses the args and the environment, and returns the mesh
// config and the logger. It returns flag.ErrHelp after printing usage for
// -h.
func Parse(fs *flag.FlagSet, spec Spec) (mesh.Config, *slog.Logger, error) {
	name := spec.Name
	mcfg := mesh.DefaultConfig()
	if spec.Mesh != nil {
		mcfg = *spec.Mesh
	}
	mcfg.Name = name
	if spec.NATSOnly {
		mcfg.RegisterNATSFlags(fs)
	} else {
		mcfg.RegisterFlags(fs)
	}
	lcfg := logging.Config{Level: spec.LogLevel, Format: "text"}
	if lcfg.Level == "" {
		lcfg.Level = "info"
	}
	lcfg.RegisterFlags(fs)
	if err := flagenv.Parse(fs, spec.Args, os.LookupEnv); err != nil {
		return mcfg, nil, err
	}
	if fs.NArg() > 0 {
		return mcfg, nil, &ArgsError{Args: fs.Args()}
	}
	mcfg.FindNATS = mcfg.FindNATS && !NATSGiven(fs, spec) && mcfg.LANWait > 0
	log, err := lcfg.New(spec.LogTo)
	if err != nil {
		return mcfg, nil, err
	}
	log = log.With("process", name)
	// go-micro parts that were not handed a logger (its registry cache,
	// for one) write to this global: send them to the process log too.
	microlog.DefaultLogger = mesh.NewMicroLogger(log.With("component", "go-micro"))
	return mcfg, log, nil
}

// NATSGiven reports whether a NATS address was given to a parsed fs: the
// --nats_url flag on the command line or in the environment
// (BOTMESH_NATS_URL), or a default in spec.Mesh other than the standard one.
func NATSGiven(fs *flag.FlagSet, spec Spec) bool {
	given := spec.Mesh != nil && spec.Mesh.NATSURL != mesh.DefaultConfig().NATSURL
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "nats_url" {
			given = true
		}
	})
	return given
}

// Connect is Parse followed by mesh.Connect.
func Connect(ctx context.Context, fs *flag.FlagSet, spec Spec) (*mesh.Mesh, *slog.Logger, error) {
	mcfg, log, err := Parse(fs, spec)
	if err != nil {
		return nil, nil, err
	}
	m, err := mesh.Connect(ctx, mcfg, mesh.WithLogger(log))
	if err != nil {
		return nil, nil, err
	}
	return m, log, nil
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
