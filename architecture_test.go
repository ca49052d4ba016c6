package stanmigrate_test

// TestImportRules holds the design's import rules (../shared/STYLE.md,
// "Our shape") with the go tool's own view of the packages, so they stay
// true as the code changes:
//
//   - plan and verify never import migrate: verify reads what migrate
//     wrote through internal/jsformat, the one contract both share;
//   - plan, migrate and verify never import cobra, the progress bar,
//     Prometheus (metrics leave them through their Reporters), a concrete
//     source (they take source.Source and never ask which kind) or a test
//     rig under internal/testkit;
//   - internal/jsformat is a leaf: it imports no package of ours;
//   - only cmd/stanmigrate imports cobra or the progress bar;
//   - no package of ours that the shipped binary links imports "testing".

import (
	"bufio"
	"bytes"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/stanmigrate/stanmigrate"

// goPackage is what `go list` says about one package.
type goPackage struct {
	imports []string // direct imports, non-test files
	deps    []string // every package it depends on, transitively
}

// listPackages runs `go list` over args with a template printing one line
// per package: its path, then the given field's packages.
func listPackages(t *testing.T, field string, args ...string) map[string][]string {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list", "-f", "{{.ImportPath}} {{join ." + field + " \" \"}}"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	pkgs := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) > 0 {
			pkgs[f[0]] = f[1:]
		}
	}
	return pkgs
}

func ours(p string) bool { return p == module || strings.HasPrefix(p, module+"/") }

// violations checks the rules against the packages' direct imports and
// transitive deps, and against the binary's dependency closure (with the
// direct imports of each package in it). It returns one line per broken
// rule.
func violations(pkgs map[string]goPackage, binary []string) []string {
	var out []string
	rel := func(p string) string { return strings.TrimPrefix(p, module+"/") }
	forbiddenIn := map[string][]string{
		"plan":    {module + "/migrate"},
		"verify":  {module + "/migrate"},
		"migrate": nil,
	}
	never := []string{
		"github.com/spf13/cobra",
		"github.com/schollz/progressbar/v3",
		"github.com/prometheus/",
		module + "/internal/metrics",
		module + "/internal/source/live",
		module + "/internal/source/dir",
		module + "/internal/testkit/",
	}
	for lib, extra := range forbiddenIn {
		p, ok := pkgs[module+"/"+lib]
		if !ok {
			out = append(out, "package "+lib+" not found")
			continue
		}
		for _, dep := range p.deps {
			for _, f := range append(slices.Clone(never), extra...) {
				if dep == f || (strings.HasSuffix(f, "/") && strings.HasPrefix(dep, f)) {
					out = append(out, lib+" depends on "+rel(dep))
				}
			}
		}
	}
	if p, ok := pkgs[module+"/internal/jsformat"]; ok {
		for _, imp := range p.imports {
			if ours(imp) {
				out = append(out, "internal/jsformat imports "+rel(imp)+": it must stay a leaf")
			}
		}
	}
	for path, p := range pkgs {
		if path == module+"/cmd/stanmigrate" {
			continue
		}
		for _, imp := range p.imports {
			if imp == "github.com/spf13/cobra" || imp == "github.com/schollz/progressbar/v3" {
				out = append(out, rel(path)+" imports "+imp+": only cmd/stanmigrate wires commands and draws progress")
			}
		}
	}
	for _, dep := range binary {
		if p, ok := pkgs[dep]; ok && slices.Contains(p.imports, "testing") {
			out = append(out, "the binary links "+rel(dep)+", which imports testing")
		}
	}
	slices.Sort(out)
	return out
}

func TestImportRules(t *testing.T) {
	imports := listPackages(t, "Imports", "./...")
	deps := listPackages(t, "Deps", "./...")
	pkgs := map[string]goPackage{}
	for path, imps := range imports {
		pkgs[path] = goPackage{imports: imps, deps: deps[path]}
	}
	binary := append(listPackages(t, "Deps", "./cmd/stanmigrate")[module+"/cmd/stanmigrate"], module+"/cmd/stanmigrate")
	var ourBinary []string
	for _, d := range binary {
		if ours(d) {
			ourBinary = append(ourBinary, d)
		}
	}
	if len(ourBinary) < 5 {
		t.Fatalf("go list found only %v in the binary: the listing is broken", ourBinary)
	}
	for _, v := range violations(pkgs, ourBinary) {
		t.Error(v)
	}
}

// TestImportRulesCatchEachBreak feeds the rules a package graph with each
// rule broken once, so a rule that silently stopped checking fails here.
func TestImportRulesCatchEachBreak(t *testing.T) {
	clean := func() map[string]goPackage {
		return map[string]goPackage{
			module + "/plan":               {deps: []string{module + "/internal/source"}},
			module + "/verify":             {deps: []string{module + "/internal/jsformat"}},
			module + "/migrate":            {deps: []string{module + "/internal/jsformat"}},
			module + "/internal/jsformat":  {imports: []string{"strconv"}},
			module + "/cmd/stanmigrate":    {imports: []string{"github.com/spf13/cobra"}},
			module + "/internal/fixture":   {imports: []string{"context"}},
			module + "/internal/testkit/x": {imports: []string{"testing"}},
		}
	}
	binary := []string{module + "/cmd/stanmigrate", module + "/internal/fixture"}
	if v := violations(clean(), binary); len(v) != 0 {
		t.Fatalf("a clean graph breaks rules: %v", v)
	}
	breaks := []struct {
		name  string
		apply func(map[string]goPackage)
		want  string
	}{
		{"verify imports migrate", func(p map[string]goPackage) {
			p[module+"/verify"] = goPackage{deps: []string{module + "/migrate"}}
		}, "verify depends on migrate"},
		{"plan imports migrate", func(p map[string]goPackage) {
			p[module+"/plan"] = goPackage{deps: []string{module + "/migrate"}}
		}, "plan depends on migrate"},
		{"migrate imports cobra", func(p map[string]goPackage) {
			p[module+"/migrate"] = goPackage{imports: []string{"github.com/spf13/cobra"}, deps: []string{"github.com/spf13/cobra"}}
		}, "migrate depends on github.com/spf13/cobra"},
		{"migrate serves metrics itself", func(p map[string]goPackage) {
			p[module+"/migrate"] = goPackage{deps: []string{"github.com/prometheus/client_golang/prometheus"}}
		}, "migrate depends on github.com/prometheus/client_golang/prometheus"},
		{"verify asks for a concrete source", func(p map[string]goPackage) {
			p[module+"/verify"] = goPackage{deps: []string{module + "/internal/source/dir"}}
		}, "verify depends on internal/source/dir"},
		{"migrate uses a test rig", func(p map[string]goPackage) {
			p[module+"/migrate"] = goPackage{deps: []string{module + "/internal/testkit/testenv"}}
		}, "migrate depends on internal/testkit/testenv"},
		{"jsformat imports one of ours", func(p map[string]goPackage) {
			p[module+"/internal/jsformat"] = goPackage{imports: []string{module + "/plan"}}
		}, "internal/jsformat imports plan"},
		{"report draws progress", func(p map[string]goPackage) {
			p[module+"/internal/report"] = goPackage{imports: []string{"github.com/schollz/progressbar/v3"}}
		}, "internal/report imports github.com/schollz/progressbar/v3"},
		{"the binary links testing", func(p map[string]goPackage) {
			p[module+"/internal/fixture"] = goPackage{imports: []string{"testing"}}
		}, "the binary links internal/fixture, which imports testing"},
	}
	for _, b := range breaks {
		t.Run(b.name, func(t *testing.T) {
			p := clean()
			b.apply(p)
			v := violations(p, binary)
			if !slices.ContainsFunc(v, func(s string) bool { return strings.Contains(s, b.want) }) {
				t.Errorf("want a violation containing %q, got %v", b.want, v)
			}
		})
	}
}
