// Package urls checks the grammar of a comma-separated list of server
// URLs before anything dials them, so a typo is reported as a typo (exit
// 2, naming the flag) rather than as a server that does not answer.
package urls

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// CheckList checks each comma-separated entry of list as a server URL
// with one of schemes; an entry without a scheme gets the first. The
// error names the entry by position and host, never quoting the whole
// entry: it may carry a password.
func CheckList(list string, schemes ...string) error {
	entries := strings.Split(list, ",")
	for i, raw := range entries {
		where := ""
		if len(entries) > 1 {
			where = fmt.Sprintf("entry %d of %d: ", i+1, len(entries))
		}
		if err := check(strings.TrimSpace(raw), schemes); err != nil {
			return fmt.Errorf("%s%w", where, err)
		}
	}
	return nil
}

func check(raw string, schemes []string) error {
	if raw == "" {
		return errors.New("is empty: remove the stray comma, or write a URL there")
	}
	if !strings.Contains(raw, "://") {
		raw = schemes[0] + "://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil && unbracketedColons(raw) {
		return errors.New("its host has more than one colon: put an IPv6 address in brackets, such as [::1]:4222")
	}
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error quotes the whole URL, password included
		}
		return fmt.Errorf("does not parse as a URL (%v)", err)
	}
	if !slices.Contains(schemes, u.Scheme) {
		return fmt.Errorf("scheme %q is not %s", u.Scheme, orList(schemes))
	}
	return checkHost(u)
}

// checkHost checks the host and port part. Go's URL parser takes a host
// with several colons and no brackets ("::1:4222", "::::") as a host and
// a port, which then fails only when dialed.
func checkHost(u *url.URL) error {
	host, port := u.Hostname(), u.Port()
	bracketed := strings.HasPrefix(u.Host, "[")
	switch {
	case host == "":
		return errors.New("names no host: write one, such as 127.0.0.1:4222 or [::1]:4222")
	case bracketed && net.ParseIP(strings.SplitN(host, "%", 2)[0]) == nil:
		return fmt.Errorf("host [%s] is not an IP address: brackets are for IPv6 addresses, such as [::1]:4222", host)
	case !bracketed && strings.Contains(host, ":"):
		return fmt.Errorf("host %q has more than one colon: put an IPv6 address in brackets, such as [::1]:4222", u.Host)
	}
	if port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("port %q is not a port number (1 to 65535)", port)
		}
	}
	return nil
}

// unbracketedColons says whether the authority of raw (which has a
// scheme) holds several colons outside brackets, which Go's URL parser
// refuses for some schemes and takes as host and port for others.
func unbracketedColons(raw string) bool {
	auth := raw[strings.Index(raw, "://")+3:]
	if i := strings.IndexAny(auth, "/?#"); i >= 0 {
		auth = auth[:i]
	}
	if i := strings.LastIndex(auth, "@"); i >= 0 {
		auth = auth[i+1:]
	}
	return !strings.HasPrefix(auth, "[") && strings.Count(auth, ":") > 1
}

func orList(words []string) string {
	if len(words) == 1 {
		return words[0]
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}
