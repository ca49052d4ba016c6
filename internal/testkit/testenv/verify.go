package testenv

import "github.com/stanmigrate/stanmigrate/verify"

// VerifyOptions are the options verify needs for this environment.
func (e *Env) VerifyOptions() verify.Options {
	return verify.Options{ClusterID: e.Pair.STAN.ClusterID(), Source: e.STAN(), Target: e.Target(), Monitor: e.Monitor()}
}
