package plan

import "github.com/stanmigrate/stanmigrate/internal/jsformat"

// Defaults and ranges of a plan, which Build and Validate apply and the
// command line's flags and help read.
const (
	// DefaultReplicas is a stream's replica count when nothing says.
	DefaultReplicas = 1
	// MinReplicas and MaxReplicas bound a stream's replicas (JetStream
	// takes 1 to 5).
	MinReplicas, MaxReplicas = 1, 5
	// DefaultHeaders is the header set migrated messages carry when
	// nothing says: stan2js's three, for applications written against
	// stan2js-migrated data.
	DefaultHeaders = jsformat.HeadersFull
	// DefaultStorage is a stream's storage when nothing says.
	DefaultStorage = "file"
)
