// Package embedded builds the test topologies -- JetStream clusters, STAN
// clusters and FT pairs, partition pipes, secured servers with minted
// credentials -- on the single servers the product ships in
// internal/embedded, which it re-exports so a test imports one rig package.
package embedded

import "github.com/stanmigrate/stanmigrate/internal/embedded"

// The product's single servers (internal/embedded), under the names the
// tests have always used.
type (
	STAN            = embedded.STAN
	STANConfig      = embedded.STANConfig
	JetStream       = embedded.JetStream
	JetStreamConfig = embedded.JetStreamConfig
	Pair            = embedded.Pair
)

// ClusterID is the STAN cluster id used when none is given.
const ClusterID = embedded.ClusterID

var (
	StartSTAN      = embedded.StartSTAN
	StartJetStream = embedded.StartJetStream
	StartPair      = embedded.StartPair
)
