package replica

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestCoreIsPure fails if the deterministic core imports anything that does
// I/O, keeps time, runs goroutines or draws global randomness: the
// simulator can only replay a core that gets all of that from its caller.
func TestCoreIsPure(t *testing.T) {
	denied := []string{"time", "math/rand", "math/rand/v2", "crypto/rand", "os", "net", "sync",
		"context", "io/fs", "google.golang.org/grpc", "github.com/rs/zerolog", "github.com/go-chi/chi/v5", "log", "syscall"}
	dirs := []string{"../protocol", "../../master", "../../sentinel", "."}
	checked := 0
	for _, dir := range dirs {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			af, err := parser.ParseFile(token.NewFileSet(), f, src, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			checked++
			for _, imp := range af.Imports {
				path, _ := strconv.Unquote(imp.Path.Value)
				for _, d := range denied {
					if path == d || strings.HasPrefix(path, d+"/") {
						t.Errorf("%s imports %q: the core must stay deterministic", f, path)
					}
				}
			}
		}
	}
	if checked < 5 {
		t.Fatalf("checked only %d files: wrong paths?", checked)
	}
}
