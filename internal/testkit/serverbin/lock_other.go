//go:build !unix

package serverbin

import "errors"

func lockFile(path string) (unlock func(), err error) {
	return nil, errors.New("serverbin: needs a unix system (flock)")
}
