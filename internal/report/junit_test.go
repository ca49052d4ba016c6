package report

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stanmigrate/stanmigrate/verify"
)

// node is a generic XML element, so the test checks the document as a CI
// parser sees it rather than through the types that wrote it.
type node struct {
	name     string
	attrs    map[string]string
	children []*node
	text     string
}

func parseXML(t *testing.T, data []byte) *node {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(data))
	var stack []*node
	var root *node
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("report is not well-formed XML: %v\n%s", err, data)
		}
		switch tk := tok.(type) {
		case xml.StartElement:
			n := &node{name: tk.Name.Local, attrs: map[string]string{}}
			for _, a := range tk.Attr {
				n.attrs[a.Name.Local] = a.Value
			}
			if len(stack) > 0 {
				p := stack[len(stack)-1]
				p.children = append(p.children, n)
			} else if root != nil {
				t.Fatal("more than one root element")
			} else {
				root = n
			}
			stack = append(stack, n)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) > 0 {
				stack[len(stack)-1].text += string(tk)
			}
		}
	}
	if root == nil {
		t.Fatal("empty report")
	}
	return root
}

// junit10 is the structure of the Jenkins xunit plugin's junit-10.xsd
// (Ant/Surefire JUnit): per element, its attributes (true = required) and
// the child elements it may hold. An attribute or child not listed is
// invalid under the schema.
var junit10 = map[string]struct {
	attrs    map[string]bool
	children []string
}{
	"testsuites": {map[string]bool{"name": false, "time": false, "tests": false, "failures": false, "errors": false}, []string{"testsuite"}},
	"testsuite": {map[string]bool{
		"name": true, "tests": true, "failures": true, "errors": true, "group": false, "time": false, "skipped": false,
		"timestamp": false, "hostname": false, "id": false, "package": false, "file": false, "log": false, "url": false,
	}, []string{"testsuite", "properties", "testcase", "system-out", "system-err"}},
	"testcase": {map[string]bool{"name": true, "time": false, "classname": false, "group": false},
		[]string{"skipped", "error", "failure", "rerunFailure", "rerunError", "flakyFailure", "flakyError", "system-out", "system-err"}},
	"failure":    {map[string]bool{"type": false, "message": false}, nil},
	"error":      {map[string]bool{"type": false, "message": false}, nil},
	"skipped":    {map[string]bool{"type": false, "message": false}, nil},
	"properties": {nil, []string{"property"}},
	"property":   {map[string]bool{"name": true, "value": true}, nil},
	"system-out": {nil, nil},
	"system-err": {nil, nil},
}

// SUREFIRE_TIME in junit-10.xsd.
var surefireTime = regexp.MustCompile(`^(([0-9]{0,3},)*[0-9]{3}|[0-9]{0,3})*(\.[0-9]*)?$`)

func checkSchema(t *testing.T, n *node, path string) {
	t.Helper()
	el, ok := junit10[n.name]
	if !ok {
		t.Errorf("%s: element <%s> is not in junit-10.xsd", path, n.name)
		return
	}
	for a, required := range el.attrs {
		if _, has := n.attrs[a]; required && !has {
			t.Errorf("%s: <%s> lacks required attribute %q", path, n.name, a)
		}
	}
	for a, v := range n.attrs {
		if _, known := el.attrs[a]; !known {
			t.Errorf("%s: <%s> has attribute %q, not allowed by junit-10.xsd", path, n.name, a)
		}
		if a == "time" && (n.name == "testsuite" || n.name == "testsuites") && !surefireTime.MatchString(v) {
			t.Errorf("%s: time %q does not match SUREFIRE_TIME", path, v)
		}
	}
	for i, c := range n.children {
		allowed := false
		for _, name := range el.children {
			allowed = allowed || c.name == name
		}
		if !allowed {
			t.Errorf("%s: <%s> may not contain <%s>", path, n.name, c.name)
		}
		checkSchema(t, c, fmt.Sprintf("%s/%s[%d]", path, c.name, i))
	}
}

func count(t *testing.T, n *node, attr string) int {
	t.Helper()
	v, err := strconv.Atoi(n.attrs[attr])
	if err != nil {
		t.Fatalf("<%s> %s=%q is not a count", n.name, attr, n.attrs[attr])
	}
	return v
}

func child(n *node, name string) *node {
	for _, c := range n.children {
		if c.name == name {
			return c
		}
	}
	return nil
}

// checkCounts holds what CI systems trust without looking further: the
// counts on <testsuite> and <testsuites> match the test cases.
func checkCounts(t *testing.T, root *node) (tests, failures, errs int) {
	t.Helper()
	if root.name != "testsuites" {
		t.Fatalf("root element <%s>, want <testsuites>", root.name)
	}
	for _, s := range root.children {
		var st, sf, se int
		for _, c := range s.children {
			if c.name != "testcase" {
				continue
			}
			st++
			if c.attrs["classname"] == "" || c.attrs["time"] == "" {
				t.Errorf("testcase %q lacks classname or time: %v", c.attrs["name"], c.attrs)
			}
			if f := child(c, "failure"); f != nil {
				sf++
				if f.attrs["message"] == "" || f.attrs["type"] == "" {
					t.Errorf("failure of %q lacks message or type: %v", c.attrs["name"], f.attrs)
				}
			}
			if child(c, "error") != nil {
				se++
			}
		}
		if count(t, s, "tests") != st || count(t, s, "failures") != sf || count(t, s, "errors") != se {
			t.Errorf("testsuite %q says tests/failures/errors %s/%s/%s, holds %d/%d/%d",
				s.attrs["name"], s.attrs["tests"], s.attrs["failures"], s.attrs["errors"], st, sf, se)
		}
		tests, failures, errs = tests+st, failures+sf, errs+se
	}
	if count(t, root, "tests") != tests || root.attrs["failures"] != strconv.Itoa(failures) && !(failures == 0 && root.attrs["failures"] == "") {
		t.Errorf("testsuites says %v, suites hold %d tests, %d failures", root.attrs, tests, failures)
	}
	return tests, failures, errs
}

func passing() *verify.Report {
	return &verify.Report{
		OK: true,
		Channels: []verify.ChannelReport{
			{Channel: "orders.eu", Stream: "orders_eu", OK: true,
				Source: verify.Side{Msgs: 600, FirstSeq: 1, LastSeq: 600, SHA256: "ab12"}, Target: verify.Side{Msgs: 600, FirstSeq: 1, LastSeq: 600, SHA256: "ab12"}},
			{Channel: "sessions", Stream: "sessions", OK: true,
				Source: verify.Side{FirstSeq: 51, LastSeq: 50}, Target: verify.Side{FirstSeq: 51, LastSeq: 50}},
		},
		Consumers: []verify.ConsumerReport{
			{Channel: "orders.eu", Stream: "orders_eu", Durable: "billing:invoicer", Consumer: "billing_invoicer", Expected: 601, Actual: 601, Position: "exact", OK: true},
		},
	}
}

func failing() *verify.Report {
	r := passing()
	r.OK = false
	r.Differences = 2
	r.Channels = append(r.Channels, verify.ChannelReport{
		Channel: "payments", Stream: "payments",
		Source:  verify.Side{Msgs: 300, FirstSeq: 201, LastSeq: 500, SHA256: "cd34"},
		Target:  verify.Side{Msgs: 297, FirstSeq: 201, LastSeq: 500, SHA256: "ef56"},
		Missing: []uint64{217, 218, 219}, MissingCount: 3, Changed: []uint64{205}, ChangedCount: 1,
		Problem: `channel "payments" (stream "payments"): 3 missing (217, 218, 219); 1 changed (205)`,
	})
	r.Consumers = append(r.Consumers, verify.ConsumerReport{
		Channel: "payments", Stream: "payments", Durable: "queue settlers:settle", Consumer: "settlers_settle",
		Expected: 205, Actual: 206, Position: "probe",
		Problem: `consumer "settlers_settle" on stream "payments": starts at 206, the durable at 205`,
	})
	return r
}

func render(t *testing.T, r *verify.Report, o JUnitOptions) (*node, string) {
	t.Helper()
	var buf bytes.Buffer
	if err := JUnit(&buf, r, o); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(buf.String(), "<?xml") {
		t.Errorf("no XML declaration:\n%s", buf.String())
	}
	root := parseXML(t, buf.Bytes())
	checkSchema(t, root, "/testsuites")
	return root, buf.String()
}

func TestJUnitPassing(t *testing.T) {
	at := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	root, text := render(t, passing(), JUnitOptions{Timestamp: at, Duration: 1500 * time.Millisecond})
	tests, failures, errs := checkCounts(t, root)
	if tests != 3 || failures != 0 || errs != 0 {
		t.Errorf("tests/failures/errors %d/%d/%d, want 3/0/0:\n%s", tests, failures, errs, text)
	}
	s := root.children[0]
	if s.attrs["name"] != "stanmigrate verify" || s.attrs["time"] != "1.500" || s.attrs["timestamp"] != "2025-03-04T05:06:07Z" {
		t.Errorf("testsuite attributes %v", s.attrs)
	}
	names := []string{}
	for _, c := range s.children {
		names = append(names, c.attrs["classname"]+" "+c.attrs["name"])
	}
	want := []string{JUnitChannelClass + " orders.eu", JUnitChannelClass + " sessions", JUnitConsumerClass + " orders.eu / billing:invoicer"}
	if strings.Join(names, "|") != strings.Join(want, "|") {
		t.Errorf("test cases %q, want %q", names, want)
	}
}

func TestJUnitFailing(t *testing.T) {
	root, text := render(t, failing(), JUnitOptions{})
	tests, failures, errs := checkCounts(t, root)
	if tests != 5 || failures != 2 || errs != 0 {
		t.Errorf("tests/failures/errors %d/%d/%d, want 5/2/0:\n%s", tests, failures, errs, text)
	}
	var ch, co *node
	for _, c := range root.children[0].children {
		switch c.attrs["name"] {
		case "payments":
			ch = child(c, "failure")
		case "payments / queue settlers:settle":
			co = child(c, "failure")
		}
	}
	if ch == nil || co == nil {
		t.Fatalf("failing cases lack <failure>:\n%s", text)
	}
	if !strings.Contains(ch.attrs["message"], "217, 218, 219") {
		t.Errorf("channel failure message %q does not name the first differing sequences", ch.attrs["message"])
	}
	for _, w := range []string{"missing from the stream: 3, first: 217, 218, 219", "changed (subject or payload): 1, first: 205", "first differing sequence: 205", "STAN    msgs 300, sequences 201..500, sha256 cd34"} {
		if !strings.Contains(ch.text, w) {
			t.Errorf("channel failure text does not say %q:\n%s", w, ch.text)
		}
	}
	if !strings.Contains(co.text, "expected start 205 (probe), consumer start 206") || co.attrs["type"] != "ConsumerDiffers" {
		t.Errorf("consumer failure %v: %q", co.attrs, co.text)
	}
}

// A run that stopped (unreachable server, bad credentials) is an error
// case; differences alone are not, they are the failures.
func TestJUnitRunError(t *testing.T) {
	root, _ := render(t, passing(), JUnitOptions{Err: errors.New("connect to STAN: \x00connection refused")})
	if _, _, errs := checkCounts(t, root); errs != 1 {
		t.Errorf("errors %d, want 1", errs)
	}
	root, _ = render(t, failing(), JUnitOptions{Err: fmt.Errorf("2 channels: %w", verify.ErrDifferences)})
	if _, failures, errs := checkCounts(t, root); errs != 0 || failures != 2 {
		t.Errorf("differences reported as errors %d / failures %d", errs, failures)
	}
}

func TestWriteJUnit(t *testing.T) {
	p := filepath.Join(t.TempDir(), "reports", "verify.xml")
	if err := WriteJUnit(p, failing(), JUnitOptions{}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	checkCounts(t, parseXML(t, data))
}

// TestXMLTextKeepsOnlyWhatXMLCarries: control characters and invalid
// UTF-8 from channel names or error texts become U+FFFD, and everything
// else passes unchanged.
func TestXMLTextKeepsOnlyWhatXMLCarries(t *testing.T) {
	for in, want := range map[string]string{
		"orders.eu":        "orders.eu",
		"tab\there\nok":    "tab\there\nok",
		"a\xffb\x01c":      "a\uFFFDb\uFFFDc",
		"nul\x00 in error": "nul\uFFFD in error",
		"ünïcode ✓":        "ünïcode ✓",
	} {
		if got := xmlText(in); got != want {
			t.Errorf("xmlText(%q) = %q, want %q", in, got, want)
		}
	}
}
