package main

import (
	"context"
	"fmt"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// The modules of the servers the demo embeds, as go.mod names them.
const (
	natsServerModule = "github.com/nats-io/nats-server/v2"
	stanServerModule = "github.com/nats-io/nats-streaming-server"
)

// buildInfo is what the binary knows about its own build.
type buildInfo struct {
	Version  string // module version ("(devel)" for a build from a checkout)
	Revision string // VCS revision, "+dirty" when built with local changes
	Time     string // VCS commit time
	Go       string
	// The servers the demo embeds.
	NATSServer, STANServer string
}

func readBuildInfo() buildInfo {
	b := buildInfo{Version: "(unknown)", NATSServer: "(unknown)", STANServer: "(unknown)"}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	b.Version, b.Go = bi.Main.Version, bi.GoVersion
	for _, m := range bi.Deps {
		v := m.Version
		if m.Replace != nil {
			v = m.Replace.Version
		}
		switch m.Path {
		case natsServerModule:
			b.NATSServer = strings.TrimPrefix(v, "v")
		case stanServerModule:
			b.STANServer = strings.TrimPrefix(v, "v")
		}
	}
	modified := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.time":
			b.Time = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if modified && b.Revision != "" {
		b.Revision += "+dirty"
	}
	return b
}

func (b buildInfo) String() string {
	rev := b.Revision
	if rev == "" {
		rev = "unknown (built without VCS information)"
	}
	if b.Time != "" {
		rev += " (" + b.Time + ")"
	}
	return fmt.Sprintf("stanmigrate %s\nrevision %s\n%s\ndemo embeds nats-server %s and nats-streaming-server %s\n",
		b.Version, rev, b.Go, b.NATSServer, b.STANServer)
}

type versionOptions struct{ io *iostreams }

func newVersionCmd(a *app) *cobra.Command {
	o := &versionOptions{io: a.io}
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, VCS revision and the server versions the demo embeds",
		Args:  noArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return runVersion(cmd.Context(), o) },
	}
}

func runVersion(_ context.Context, o *versionOptions) error {
	fmt.Fprint(o.io.Out, readBuildInfo())
	return nil
}
