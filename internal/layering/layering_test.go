package layering

import (
	"fmt"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// An edge is one import of a project package by another, paths relative
// to the module ("" is the module root).
type edge struct {
	from, to string
	test     bool // the import is in a _test.go file
	file     string
}

// layer names the part of the project a package belongs to.
func layer(pkg string) string {
	switch {
	case under(pkg, "relocation/pagexfer"), under(pkg, "relocation/filexfer"):
		return "transfer" // the leaf stream libraries
	case under(pkg, "cmd"), under(pkg, "agent"), under(pkg, "relocation"), under(pkg, "repository"),
		under(pkg, "vmm"), under(pkg, "config"), under(pkg, "internal"):
		return strings.SplitN(pkg, "/", 2)[0]
	case pkg == "test":
		return "test" // the end-to-end tests
	}
	return ""
}

// under says whether pkg is dir or inside it.
func under(pkg, dir string) bool { return pkg == dir || strings.HasPrefix(pkg, dir+"/") }

// mayImport is the direction: which layers each layer may import, besides
// internal/* (leaves everyone may import) and its own packages. Imports point
// down DESIGN's list and never up.
var mayImport = map[string][]string{
	"cmd":        {"agent", "relocation", "transfer", "repository", "vmm", "config"},
	"agent":      {"relocation", "transfer", "repository", "vmm", "config"},
	"relocation": {"transfer", "config"},
	"repository": {"config"},
	"vmm":        {"transfer", "config"},
	"transfer":   {"config"},
	"config":     {},
	"internal":   {}, // below everything: only other internal/* packages
	"test":       {"agent", "relocation", "transfer", "repository", "vmm", "config"},
}

// exceptions are the imports that break the direction for a reason: a
// from/to prefix pair, whether only in test files, and why.
var exceptions = []struct {
	from, to string
	testOnly bool
	why      string
}{
	{"relocation/pagexfer", "vmm", true,
		"pagexfer's tests stream the real sim and kvm engines' guest memory and dirty logs " +
			"(vmm/workload, vmm/kvm and the kvm engine); its code knows memory only through the " +
			"Source and Sink interfaces the engines implement, and vmm's code imports pagexfer, not the reverse"},
}

// violation says why e breaks the rule, or "" when it does not.
func violation(e edge) string {
	switch {
	case layer(e.to) == "cmd":
		return "nothing imports cmd"
	case e.to == "agent" && layer(e.from) != "cmd":
		return "only cmd imports agent, the composition root (agent/doc.go)"
	case layer(e.from) == "":
		return fmt.Sprintf("package %q is in no layer of DESIGN.md's layout (add it to layer())", e.from)
	case layer(e.to) == "":
		return fmt.Sprintf("package %q is in no layer of DESIGN.md's layout (add it to layer())", e.to)
	case pointsDown(e) || excepted(e):
		return ""
	}
	from := layer(e.from)
	if from == "internal" {
		return "internal/* are the bottom layer: they import nothing of the project but each other"
	}
	var may []string
	for _, l := range mayImport[from] {
		may = append(may, name(l))
	}
	return fmt.Sprintf("%s may import only %s", name(from), strings.Join(append(may, "its own packages", "internal/*"), ", "))
}

// name is how messages call a layer.
func name(layer string) string {
	switch layer {
	case "transfer":
		return "relocation/pagexfer and relocation/filexfer"
	case "test":
		return "test (end to end)"
	}
	return layer
}

// pointsDown says whether e follows the direction.
func pointsDown(e edge) bool {
	from, to := layer(e.from), layer(e.to)
	switch {
	case from == "internal":
		return to == "internal" // the bottom layer: each other only
	case to == "internal":
		return true
	case from == "transfer":
		// Its own sub-packages, not the other library's.
		return under(e.to, topTwo(e.from)) || slices.Contains(mayImport[from], to)
	case from == to:
		return true
	}
	return slices.Contains(mayImport[from], to)
}

// excepted says whether e is one of the listed exceptions.
func excepted(e edge) bool {
	for _, x := range exceptions {
		if under(e.from, x.from) && under(e.to, x.to) && (e.test || !x.testOnly) {
			return true
		}
	}
	return false
}

// topTwo is the first two elements of a path (relocation/pagexfer).
func topTwo(pkg string) string {
	parts := strings.SplitN(pkg, "/", 3)
	return strings.Join(parts[:min(2, len(parts))], "/")
}

// moduleRoot finds go.mod above the test's directory and the module path
// it declares.
func moduleRoot(t *testing.T) (dir, module string) {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil {
			m := regexp.MustCompile(`(?m)^module\s+(\S+)`).FindSubmatch(b)
			if m == nil {
				t.Fatalf("%s/go.mod declares no module", dir)
			}
			return dir, string(m[1])
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// projectImports parses the import blocks of every Go file under root
// (testdata, hidden and underscore directories left out, as the go tool
// does) and returns the imports of the module's own packages.
func projectImports(t *testing.T, root, module string) (pkgs map[string]bool, edges []edge) {
	t.Helper()
	pkgs = map[string]bool{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (name == "testdata" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		pkg := filepath.ToSlash(rel)
		pkgs[pkg] = true
		for _, im := range f.Imports {
			p, err := strconv.Unquote(im.Path.Value)
			if err != nil {
				return fmt.Errorf("%s: import %s: %w", path, im.Path.Value, err)
			}
			if p == module || strings.HasPrefix(p, module+"/") {
				edges = append(edges, edge{from: pkg, to: strings.TrimPrefix(strings.TrimPrefix(p, module), "/"),
					test: strings.HasSuffix(name, "_test.go"), file: filepath.ToSlash(filepath.Join(rel, name))})
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return pkgs, edges
}

// TestImportsPointOneWay checks every import of a project package by
// another against the direction of DESIGN.md.
func TestImportsPointOneWay(t *testing.T) {
	root, module := moduleRoot(t)
	pkgs, edges := projectImports(t, root, module)
	// A walk that found nothing would pass; it must have seen every layer.
	for _, p := range []string{"cmd/ovs-agent", "agent", "relocation", "relocation/pagexfer", "relocation/filexfer", "repository", "vmm", "config", "internal/atomicfile", "test"} {
		if !pkgs[p] {
			t.Fatalf("package %s not found under %s (found %d packages)", p, root, len(pkgs))
		}
	}
	for _, e := range edges {
		if why := violation(e); why != "" {
			t.Errorf("%s imports %s: %s", e.file, e.to, why)
		}
	}
}

// TestDirectionRefusesUpwardImports checks the rule itself on imports that
// DESIGN.md forbids and on some it allows.
func TestDirectionRefusesUpwardImports(t *testing.T) {
	refused := []edge{
		{from: "vmm", to: "agent"},
		{from: "vmm/kvm", to: "agent/domains"},
		{from: "vmm", to: "relocation"},
		{from: "vmm", to: "repository"},
		{from: "relocation", to: "agent/migration"},
		{from: "relocation", to: "vmm/control"},
		{from: "relocation/pagexfer", to: "relocation"},
		{from: "relocation/pagexfer", to: "vmm/workload"}, // outside its tests
		{from: "relocation/filexfer", to: "relocation/pagexfer"},
		{from: "repository", to: "vmm"},
		{from: "config", to: "repository"},
		{from: "internal/connlimit", to: "config"},
		{from: "agent", to: "cmd/ovs-agent"},
		{from: "test", to: "cmd/ovm"},
		{from: "test", to: "agent"},
		{from: "agent/migration", to: "agent"},
		{from: "tools", to: "agent"},
	}
	for _, e := range refused {
		if violation(e) == "" {
			t.Errorf("%s → %s (test file %v) is allowed; DESIGN.md forbids it", e.from, e.to, e.test)
		}
	}
	allowed := []edge{
		{from: "cmd/ovs-agent", to: "agent"},
		{from: "agent", to: "agent/xmlrpc"},
		{from: "agent/domains", to: "relocation/pagexfer"},
		{from: "agent/hostinfo", to: "vmm/kvm"},
		{from: "vmm", to: "relocation/pagexfer"},
		{from: "vmm/control", to: "internal/atomicfile"},
		{from: "internal/passwordfile", to: "internal/boundedfile"},
		{from: "relocation/pagexfer", to: "config"},
		{from: "relocation/pagexfer", to: "vmm/workload", test: true},
		{from: "config/manifest", to: "config/vmcfg"},
		{from: "repository", to: "config/vmcfg"},
		{from: "test", to: "agent/client"},
	}
	for _, e := range allowed {
		if why := violation(e); why != "" {
			t.Errorf("%s → %s (test file %v) is refused (%s); DESIGN.md allows it", e.from, e.to, e.test, why)
		}
	}
}
