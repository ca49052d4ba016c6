package testenv

import "github.com/stanmigrate/stanmigrate/verify"

// VerifyOptions are the options verify needs for this environment.
func (e *Env) VerifyOptions() verify.Options {
	return verify.Options{Target: e.Target()}
}
