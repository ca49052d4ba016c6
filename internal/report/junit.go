package report

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jstemmer/go-junit-report/v2/junit"

	"github.com/stanmigrate/stanmigrate/internal/atomicfile"
	"github.com/stanmigrate/stanmigrate/verify"
)

// JUnit reports are for CI systems (Jenkins, GitLab, GitHub test reporters),
// which render the common JUnit XML shape (the Jenkins/Ant junit-10.xsd):
// <testsuites> with one <testsuite> holding one <testcase> per channel and
// per consumer, a <failure> for each that differs. The XML types are
// go-junit-report's junit package, which writes exactly that shape.

// JUnit classnames; CI systems group test cases by them.
const (
	JUnitChannelClass  = "stanmigrate.verify.channel"
	JUnitConsumerClass = "stanmigrate.verify.consumer"
	JUnitRunClass      = "stanmigrate.verify"
)

// JUnitOptions carry what a verify.Report does not.
type JUnitOptions struct {
	// Timestamp is when verify started; zero leaves it out.
	Timestamp time.Time
	// Duration is how long verify ran; it is the suite's time. Test cases
	// have time 0: channels are verified in parallel and verify does not
	// time them one by one.
	Duration time.Duration
	// Err is the error verify.Run returned. Anything but differences
	// (verify.ErrDifferences) becomes a test case with an <error>, so a
	// run that could not finish does not look like a passing one.
	Err error
}

// JUnit writes r as a JUnit XML report.
func JUnit(w io.Writer, r *verify.Report, o JUnitOptions) error {
	if r == nil {
		r = &verify.Report{}
	}
	suite := junit.Testsuite{Name: "stanmigrate verify", Time: seconds(o.Duration)}
	if !o.Timestamp.IsZero() {
		suite.SetTimestamp(o.Timestamp.UTC())
	}
	for _, c := range r.Channels {
		suite.AddTestcase(channelCase(c))
	}
	for _, c := range r.Consumers {
		suite.AddTestcase(consumerCase(c))
	}
	if o.Err != nil && !errors.Is(o.Err, verify.ErrDifferences) {
		msg := xmlText(o.Err.Error())
		suite.AddTestcase(junit.Testcase{
			Name: "verify run", Classname: JUnitRunClass, Time: seconds(0),
			Error: &junit.Result{Message: msg, Type: "error", Data: msg},
		})
	}
	root := junit.Testsuites{Name: suite.Name, Time: suite.Time}
	root.AddSuite(suite)
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return fmt.Errorf("write JUnit report: %w", err)
	}
	if err := root.WriteXML(w); err != nil {
		return fmt.Errorf("write JUnit report: %w", err)
	}
	return nil
}

// WriteJUnit writes the JUnit report to path atomically: a CI step reading
// it never sees half a file, even if verify is killed while writing.
func WriteJUnit(path string, r *verify.Report, o JUnitOptions) error {
	var buf bytes.Buffer
	if err := JUnit(&buf, r, o); err != nil {
		return err
	}
	if err := atomicfile.Write(path, buf.Bytes()); err != nil {
		return fmt.Errorf("JUnit report: %w", err)
	}
	return nil
}

func channelCase(c verify.ChannelReport) junit.Testcase {
	tc := junit.Testcase{Name: xmlText(c.Channel), Classname: JUnitChannelClass, Time: seconds(0)}
	var b strings.Builder
	fmt.Fprintf(&b, "channel %q -> stream %q\n", c.Channel, c.Stream)
	side := func(label string, s verify.Side) {
		fmt.Fprintf(&b, "%-7s msgs %d, sequences %s", label, s.Msgs, seqRange(s.FirstSeq, s.LastSeq))
		if s.SHA256 != "" {
			fmt.Fprintf(&b, ", sha256 %s", s.SHA256)
		}
		b.WriteString("\n")
	}
	side("STAN", c.Source)
	side("stream", c.Target)
	if c.Sampled > 0 {
		fmt.Fprintf(&b, "sampled %d sequences\n", c.Sampled)
	}
	if c.OK {
		tc.SystemOut = &junit.Output{Data: xmlText(b.String())}
		return tc
	}
	kinds := []struct {
		what  string
		count uint64
		seqs  []uint64
	}{
		{"missing from the stream", c.MissingCount, c.Missing},
		{"extra in the stream", c.ExtraCount, c.Extra},
		{"changed (subject or payload)", c.ChangedCount, c.Changed},
	}
	var first []uint64
	for _, k := range kinds {
		if k.count == 0 && len(k.seqs) == 0 {
			continue
		}
		fmt.Fprintf(&b, "%s: %d, first: %s\n", k.what, max(k.count, uint64(len(k.seqs))), seqList(k.seqs))
		if len(k.seqs) > 0 {
			first = append(first, k.seqs[0])
		}
	}
	if len(first) > 0 {
		fmt.Fprintf(&b, "first differing sequence: %d\n", slices.Min(first))
	}
	msg := c.Problem
	if msg == "" {
		msg = fmt.Sprintf("channel %q (stream %q) differs", c.Channel, c.Stream)
	}
	tc.Failure = &junit.Result{Message: xmlText(msg), Type: "ChannelDiffers", Data: xmlText(b.String())}
	return tc
}

func consumerCase(c verify.ConsumerReport) junit.Testcase {
	tc := junit.Testcase{Name: xmlText(c.Channel + " / " + c.Durable), Classname: JUnitConsumerClass, Time: seconds(0)}
	text := fmt.Sprintf("durable %s on channel %q -> consumer %q on stream %q\nexpected start %d", c.Durable, c.Channel, c.Consumer, c.Stream, c.Expected)
	if c.Position != "" {
		text += " (" + c.Position + ")"
	}
	text += fmt.Sprintf(", consumer start %d\n", c.Actual)
	if c.OK {
		tc.SystemOut = &junit.Output{Data: xmlText(text)}
		return tc
	}
	msg := c.Problem
	if msg == "" {
		msg = fmt.Sprintf("consumer %q on stream %q starts at %d, the durable at %d", c.Consumer, c.Stream, c.Actual, c.Expected)
	}
	tc.Failure = &junit.Result{Message: xmlText(msg), Type: "ConsumerDiffers", Data: xmlText(text)}
	return tc
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.3f", d.Seconds()) }

func seqList(seqs []uint64) string {
	if len(seqs) == 0 {
		return "-"
	}
	parts := make([]string, len(seqs))
	for i, s := range seqs {
		parts[i] = fmt.Sprint(s)
	}
	return strings.Join(parts, ", ")
}

// xmlText replaces what XML 1.0 cannot carry at all (most control
// characters, invalid UTF-8): encoding/xml escapes markup but writes such
// characters as they are inside CDATA, and a CI parser then rejects the
// whole report. Channel names and error texts come from outside.
// strings.Map returns s itself when nothing changes, and treats each
// invalid byte as a change to RuneError.
func xmlText(s string) string {
	return strings.Map(func(r rune) rune {
		if r == utf8.RuneError || !xmlChar(r) {
			return '\uFFFD'
		}
		return r
	}, s)
}

func xmlChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D ||
		r >= 0x20 && r <= 0xD7FF ||
		r >= 0xE000 && r <= 0xFFFD ||
		r >= 0x10000 && r <= 0x10FFFF
}
