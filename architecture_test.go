package stanmigrate_test

// TestImportRules holds the design's import rules (CONTRIBUTING.md,
// "Layout") with the go tool's own view of the packages, so they stay
// true as the code changes:
//
//   - plan and verify never import migrate, and migrate never imports
//     verify: verify reads what migrate wrote through internal/jsformat,
//     the one contract both share;
//   - plan, migrate and verify never import cobra, the progress bar,
//     Prometheus (metrics leave them through their Reporters), a concrete
//     source (they take source.Source and never ask which kind) or a test
//     rig under internal/testkit;
//   - internal/jsformat is a leaf: it imports no package of ours;
//   - only cmd/stanmigrate imports cobra or the progress bar;
//   - no package of ours that the shipped binary links imports "testing",
//     and the binary links nothing under internal/testkit (the demo's
//     servers live in internal/embedded);
//   - the libraries -- every package of ours the binary links except
//     cmd/stanmigrate -- never print, exit or read the environment, checked
//     on their syntax trees (TestLibrariesStayQuiet): results, progress and
//     errors go back to the caller, and cmd reads the environment once.

import (
	"bufio"
	"bytes"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
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
		"migrate": {module + "/verify"},
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
		if strings.HasPrefix(dep, module+"/internal/testkit/") {
			out = append(out, "the binary links the test rig "+rel(dep))
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
		{"migrate imports verify", func(p map[string]goPackage) {
			p[module+"/migrate"] = goPackage{deps: []string{module + "/verify"}}
		}, "migrate depends on verify"},
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
		{"the binary links a test rig", nil, "the binary links the test rig internal/testkit/x"},
	}
	for _, b := range breaks {
		t.Run(b.name, func(t *testing.T) {
			p, bin := clean(), binary
			if b.apply != nil {
				b.apply(p)
			} else {
				bin = append(slices.Clone(binary), module+"/internal/testkit/x")
				p[module+"/internal/testkit/x"] = goPackage{imports: []string{"context"}}
			}
			v := violations(p, bin)
			if !slices.ContainsFunc(v, func(s string) bool { return strings.Contains(s, b.want) }) {
				t.Errorf("want a violation containing %q, got %v", b.want, v)
			}
		})
	}
}

// quietRules lists, per standard package, the names a library must not
// use, with what using them would do.
var quietRules = map[string]map[string]string{
	"fmt": {"Print": "prints", "Printf": "prints", "Println": "prints"},
	"os": {
		"Stdout": "prints", "Stderr": "prints", "Exit": "exits",
		"Getenv": "reads the environment", "LookupEnv": "reads the environment",
		"Environ": "reads the environment", "ExpandEnv": "reads the environment",
	},
	"log": {
		"Print": "prints", "Printf": "prints", "Println": "prints",
		"Fatal": "exits", "Fatalf": "exits", "Fatalln": "exits",
		"Panic": "prints", "Panicf": "prints", "Panicln": "prints",
	},
	"syscall": {"Exit": "exits", "Getenv": "reads the environment", "Environ": "reads the environment"},
}

// loudLines parses one Go source file and returns a line per use of a
// name in quietRules (whatever name the file imports the package under)
// and per call of the print/println builtins.
func loudLines(filename string, src []byte) ([]string, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, filename, src, 0)
	if err != nil {
		return nil, err
	}
	local := map[string]string{} // name in this file -> import path
	var out []string
	for _, imp := range f.Imports {
		path, _ := strconv.Unquote(imp.Path.Value)
		if _, watched := quietRules[path]; !watched {
			continue
		}
		name := path
		if imp.Name != nil {
			name = imp.Name.Name
		}
		if name == "." {
			out = append(out, fmt.Sprintf("%s: dot-imports %s, so its printing, exiting or environment calls cannot be checked", fset.Position(imp.Pos()), path))
		}
		local[name] = path
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.SelectorExpr:
			// A package name is an unresolved identifier; a local
			// variable that happens to be called os is resolved.
			if x, ok := n.X.(*ast.Ident); ok && x.Obj == nil {
				if what, ok := quietRules[local[x.Name]][n.Sel.Name]; ok {
					out = append(out, fmt.Sprintf("%s: %s.%s %s", fset.Position(n.Pos()), local[x.Name], n.Sel.Name, what))
				}
			}
		case *ast.CallExpr:
			if id, ok := n.Fun.(*ast.Ident); ok && id.Obj == nil && (id.Name == "print" || id.Name == "println") {
				out = append(out, fmt.Sprintf("%s: the %s builtin prints", fset.Position(n.Pos()), id.Name))
			}
		}
		return true
	})
	return out, nil
}

// TestLibrariesStayQuiet: no library the binary links prints, exits or
// reads the environment. cmd/stanmigrate does those, once, for all of
// them.
func TestLibrariesStayQuiet(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}\t{{.Dir}}\t{{join .GoFiles \"\\t\"}}", "./cmd/stanmigrate")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	listing, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var libs []string
	for _, line := range strings.Split(strings.TrimSpace(string(listing)), "\n") {
		f := strings.Split(line, "\t")
		if !ours(f[0]) || f[0] == module+"/cmd/stanmigrate" {
			continue
		}
		libs = append(libs, strings.TrimPrefix(f[0], module+"/"))
		for _, name := range f[2:] {
			path := filepath.Join(f[1], name)
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			loud, err := loudLines(path, src)
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range loud {
				t.Errorf("%s: a library gets its settings from its caller and hands back results and errors", l)
			}
		}
	}
	for _, want := range []string{"plan", "migrate", "verify", "internal/conn", "internal/embedded"} {
		if !slices.Contains(libs, want) {
			t.Errorf("the binary's libraries as listed (%v) lack %s: the listing is broken", libs, want)
		}
	}
}

// TestLibrariesStayQuietCatchEachBreak feeds the checker a source with
// each forbidden use once, so a rule that silently stopped checking fails
// here.
func TestLibrariesStayQuietCatchEachBreak(t *testing.T) {
	clean := `package lib

import (
	"fmt"
	"io"
	"os"
)

func f(w io.Writer, os2 *os.File) error {
	os := struct{ Stdout int }{1}
	fmt.Fprintln(w, os.Stdout)
	_ = fmt.Sprintf("%d", 1)
	return fmt.Errorf("x: %w", os2.Close())
}
`
	if v, err := loudLines("clean.go", []byte(clean)); err != nil || len(v) != 0 {
		t.Fatalf("a quiet source is reported: %v %v", v, err)
	}
	for _, c := range []struct{ imp, body, want string }{
		{`"fmt"`, `fmt.Println("x")`, "fmt.Println prints"},
		{`"fmt"`, `fmt.Printf("x")`, "fmt.Printf prints"},
		{`"os"`, `_ = os.Stdout`, "os.Stdout prints"},
		{`"fmt"; "os"`, `fmt.Fprintln(os.Stderr, "x")`, "os.Stderr prints"},
		{`"log"`, `log.Printf("x")`, "log.Printf prints"},
		{`"os"`, `os.Exit(1)`, "os.Exit exits"},
		{`"log"`, `log.Fatal("x")`, "log.Fatal exits"},
		{`"os"`, `_ = os.Getenv("X")`, "os.Getenv reads the environment"},
		{`"os"`, `_, _ = os.LookupEnv("X")`, "os.LookupEnv reads the environment"},
		{`"os"`, `_ = os.Environ()`, "os.Environ reads the environment"},
		{`sys "os"`, `_ = sys.Getenv("X")`, "os.Getenv reads the environment"},
		{`. "os"`, `_ = Getenv("X")`, "dot-imports os"},
		{`"io"`, `println("x")`, "println builtin prints"},
	} {
		src := fmt.Sprintf("package lib\n\nimport (%s)\n\nfunc f() {\n\t%s\n}\n", c.imp, c.body)
		v, err := loudLines("bad.go", []byte(src))
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		if !slices.ContainsFunc(v, func(s string) bool { return strings.Contains(s, c.want) }) {
			t.Errorf("%s: want a violation containing %q, got %v", c.body, c.want, v)
		}
	}
}
