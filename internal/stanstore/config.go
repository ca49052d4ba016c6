package stanstore

import (
	"fmt"

	stand "github.com/nats-io/nats-streaming-server/server"
)

// ServerConfig is what a STAN configuration file says about the store.
type ServerConfig struct {
	// ClusterID from the file ("" when it sets none).
	ClusterID string
	// Dir is the file store directory the file names ("" when none).
	Dir string
	// StoreType is FILE, SQL or MEMORY.
	StoreType string
	// Options carry the store limits and the file options that matter to
	// a reader (the CRC polynomial).
	Options Options
}

// LoadServerConfig reads a nats-streaming-server configuration file with
// the server's own parser, starting from the server's defaults, so that
// the limits are exactly those a server started with `-sc path` applied.
// Limits given on the server's command line instead of in the file are
// not known to it: put them in the file.
func LoadServerConfig(path string) (*ServerConfig, error) {
	opts := stand.GetDefaultOptions()
	opts.ID = ""
	if err := stand.ProcessConfigFile(path, opts); err != nil {
		return nil, fmt.Errorf("STAN configuration %s: %w", path, err)
	}
	lim := opts.StoreLimits.Clone()
	if err := lim.Build(); err != nil {
		return nil, fmt.Errorf("STAN configuration %s: store limits: %w", path, err)
	}
	return &ServerConfig{
		ClusterID: opts.ID,
		Dir:       opts.FilestoreDir,
		StoreType: opts.StoreType,
		Options: Options{
			Limits:        &opts.StoreLimits,
			CRCPolynomial: opts.FileStoreOpts.CRCPolynomial,
		},
	}, nil
}
