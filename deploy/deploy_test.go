package deploy_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// The command's contract, copied from DESIGN.md ("Contract"): the
// deployment files may use these and nothing else. run's list adds
// --accounts-file, which the accounts package serves. The value says whether
// the flag takes a value (false: a boolean flag).
var (
	contractCommands = []string{"run", "migrate", "state", "simulate", "demo", "version"}

	contractRunFlags = map[string]bool{
		"api-key": true, "api-key-file": true, "base-url": true, "revision": true,
		"sink": true, "out": true, "database-url": true, "pg-schema": true,
		"page-size": true, "rate-burst": true, "rate-steady": true, "concurrency": true,
		"since": true, "until": true, "full-refresh": false, "lookback": true,
		"cursor-field": true, "additional-fields": true, "include": true,
		"log-level": true, "log-format": true, "progress": true,
		"request-timeout": true, "budget-share": true, "dry-run": false, "no-migrate": false,
		"metrics-file": true, "metrics-push-url": true,
		"accounts-file": true,
	}

	contractSimulateFlags = map[string]bool{
		"addr": true, "api-key": true, "profiles": true, "seed": true,
		"latency": true, "rate-burst": true, "rate-steady": true, "fault-rate": true,
	}

	// The contract's environment variables for run.
	contractEnv = []string{
		"KLAVIYO_API_KEY", "KLAVIYO_API_KEY_FILE", "KLAVIYO_BASE_URL", "KLAVIYO_REVISION", "DATABASE_URL",
	}

	// Values the contract enumerates.
	contractValues = map[string][]string{
		"sink":         {"parquet", "postgres"},
		"log-format":   {"json", "console", "auto"},
		"progress":     {"auto", "always", "never"},
		"cursor-field": {"created", "updated"},
	}
)

// The runtime user of the image; Kubernetes must run as the same one.
const imageUser = 65532

// invocation is a parsed command line of klaviyo-etl.
type invocation struct {
	command string
	flags   map[string]string // boolean flags map to "true"
}

// parseArgs checks args against the contract: a contract command, then
// --flag value, --flag=value or --boolean flags of that command, each once.
func parseArgs(args []string) (invocation, error) {
	if len(args) == 0 {
		return invocation{}, errors.New("no command")
	}
	inv := invocation{command: args[0], flags: map[string]string{}}
	if !slices.Contains(contractCommands, inv.command) {
		return inv, fmt.Errorf("command %q is not in the contract %v", inv.command, contractCommands)
	}
	var known map[string]bool
	switch inv.command {
	case "run":
		known = contractRunFlags
	case "simulate":
		known = contractSimulateFlags
	default:
		known = map[string]bool{}
	}
	for i := 1; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "--") {
			return inv, fmt.Errorf("argument %q: want --flag", a)
		}
		name, value, hasValue := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		takesValue, ok := known[name]
		if !ok {
			return inv, fmt.Errorf("flag --%s is not a %s flag of the contract", name, inv.command)
		}
		if _, dup := inv.flags[name]; dup {
			return inv, fmt.Errorf("flag --%s given twice", name)
		}
		switch {
		case hasValue:
		case !takesValue:
			value = "true"
		case i+1 < len(args):
			i++
			value = args[i]
		default:
			return inv, fmt.Errorf("flag --%s needs a value", name)
		}
		if allowed, ok := contractValues[name]; ok && !slices.Contains(allowed, value) {
			return inv, fmt.Errorf("--%s %q: the contract allows %v", name, value, allowed)
		}
		inv.flags[name] = value
	}
	return inv, nil
}

func TestParseArgs(t *testing.T) {
	tests := []struct {
		args    []string
		want    map[string]string
		wantErr string
	}{
		{[]string{"run", "--sink", "postgres", "--dry-run", "--out=/x"}, map[string]string{"sink": "postgres", "dry-run": "true", "out": "/x"}, ""},
		{[]string{"simulate", "--addr", "0.0.0.0:8080"}, map[string]string{"addr": "0.0.0.0:8080"}, ""},
		{nil, nil, "no command"},
		{[]string{"export"}, nil, `command "export"`},
		{[]string{"run", "--output", "x"}, nil, "--output is not a run flag"},
		{[]string{"run", "--addr", "x"}, nil, "--addr is not a run flag"},
		{[]string{"run", "--sink", "s3"}, nil, `--sink "s3"`},
		{[]string{"run", "--sink"}, nil, "needs a value"},
		{[]string{"run", "-sink", "postgres"}, nil, "want --flag"},
		{[]string{"run", "--out", "a", "--out", "b"}, nil, "twice"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			inv, err := parseArgs(tt.args)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(inv.flags) != fmt.Sprint(tt.want) {
				t.Errorf("flags = %v, want %v", inv.flags, tt.want)
			}
		})
	}
}

// decodeStrict decodes one YAML (or JSON) document into v the way the
// Kubernetes API server does: duplicate keys, keys that match no field
// (compared case-sensitively) and values of the wrong type are errors.
func decodeStrict(doc []byte, v any) error {
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	strict, err := sigsjson.UnmarshalStrict(j, v, sigsjson.DisallowUnknownFields, sigsjson.DisallowDuplicateFields)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

func TestDecodeStrictRejectsTypos(t *testing.T) {
	type inner struct {
		RunAsNonRoot *bool `json:"runAsNonRoot"`
	}
	type outer struct {
		Name            string `json:"name"`
		SecurityContext inner  `json:"securityContext"`
	}
	tests := []struct {
		doc     string
		wantErr string
	}{
		{"name: a\nsecurityContext: {runAsNonRoot: true}\n", ""},
		{"name: a\nsecurityContext: {runAsNonroot: true}\n", `unknown field "securityContext.runAsNonroot"`},
		{"Name: a\n", `unknown field "Name"`},
		{"name: a\nname: b\n", `already set`},
		{"name: a\nsecurityContext: {runAsNonRoot: yes-please}\n", `cannot unmarshal`},
	}
	for _, tt := range tests {
		var v outer
		err := decodeStrict([]byte(tt.doc), &v)
		if tt.wantErr == "" {
			if err != nil {
				t.Errorf("%q: %v", tt.doc, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%q: err = %v, want %q", tt.doc, err, tt.wantErr)
		}
	}
}

// splitDocuments splits a multi-document YAML file the way kubectl does,
// dropping documents that hold only comments.
func splitDocuments(t *testing.T, path string) [][]byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var docs [][]byte
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		j, err := yaml.YAMLToJSON(doc)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if string(j) != "null" {
			docs = append(docs, doc)
		}
	}
}

// dockerfile is the final stage of the Dockerfile and the whole text.
type dockerfile struct {
	text       string
	finalFrom  string
	user       string
	entrypoint []string
	cmd        []string
}

func readDockerfile(t *testing.T) dockerfile {
	t.Helper()
	b, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	d := dockerfile{text: string(b)}
	// Continuation lines are joined so that each instruction is one line.
	text := strings.ReplaceAll(d.text, "\\\n", " ")
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		instr, rest, _ := strings.Cut(line, " ")
		rest = strings.TrimSpace(rest)
		switch strings.ToUpper(instr) {
		case "FROM":
			// A new stage resets what the final image gets.
			fields := strings.Fields(rest)
			for len(fields) > 0 && strings.HasPrefix(fields[0], "--") {
				fields = fields[1:]
			}
			d.finalFrom, d.user, d.entrypoint, d.cmd = fields[0], "", nil, nil
		case "USER":
			d.user = rest
		case "ENTRYPOINT":
			if err := json.Unmarshal([]byte(rest), &d.entrypoint); err != nil {
				t.Fatalf("ENTRYPOINT %s: want the exec (JSON) form: %v", rest, err)
			}
		case "CMD":
			if err := json.Unmarshal([]byte(rest), &d.cmd); err != nil {
				t.Fatalf("CMD %s: want the exec (JSON) form: %v", rest, err)
			}
		}
	}
	return d
}

func TestDockerfile(t *testing.T) {
	d := readDockerfile(t)
	if d.finalFrom != "gcr.io/distroless/static-debian12:nonroot" && d.finalFrom != "scratch" {
		t.Errorf("final stage FROM %s: want distroless static nonroot or scratch", d.finalFrom)
	}
	uid, _, _ := strings.Cut(d.user, ":")
	if n, err := strconv.Atoi(uid); err != nil || n != imageUser {
		t.Errorf("USER %q: want the numeric user %d (runAsNonRoot can only verify a number)", d.user, imageUser)
	}
	if !slices.Equal(d.entrypoint, []string{"/klaviyo-etl"}) || !slices.Equal(d.cmd, []string{"run"}) {
		t.Errorf("ENTRYPOINT %v CMD %v: want [/klaviyo-etl] [run]", d.entrypoint, d.cmd)
	}
	for _, want := range []string{
		"CGO_ENABLED=0", "-trimpath", "-s -w", "./cmd/klaviyo-etl", "-o /out/klaviyo-etl",
		"COPY --from=build /out/klaviyo-etl /klaviyo-etl",
	} {
		if !strings.Contains(d.text, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	// -X silently does nothing when the variable it names does not exist,
	// so check that the linker flags name variables cmd declares.
	vars := packageVars(t, "../cmd/klaviyo-etl")
	for _, x := range []string{"version", "commit"} {
		if !strings.Contains(d.text, "-X main."+x+"=") {
			t.Errorf("Dockerfile does not set main.%s with -X", x)
		}
		if !vars[x] {
			t.Errorf("cmd/klaviyo-etl declares no package-level variable %q for -X main.%s", x, x)
		}
	}
}

// packageVars lists the package-level variables of the package in dir.
func packageVars(t *testing.T, dir string) map[string]bool {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]bool{}
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		// A file mid-edit elsewhere in cmd still yields the declarations
		// parsed before its error; the build of cmd reports the error.
		af, _ := parser.ParseFile(fset, f, nil, parser.SkipObjectResolution)
		if af == nil {
			continue
		}
		for _, decl := range af.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.VAR {
				continue
			}
			for _, spec := range gd.Specs {
				for _, name := range spec.(*ast.ValueSpec).Names {
					vars[name.Name] = true
				}
			}
		}
	}
	return vars
}

// TestDockerignoreKeepsTheBuildInputs checks that no file the image's build
// needs is excluded: the sources of every package the command imports, and
// the files they embed.
func TestDockerignoreKeepsTheBuildInputs(t *testing.T) {
	b, err := os.ReadFile("../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "!") {
			t.Fatalf(".dockerignore: %q: re-inclusion is not modelled by this test; keep to exclusions", line)
		}
		patterns = append(patterns, strings.TrimPrefix(line, "/"))
	}
	needed := []string{"go.mod", "go.sum"}
	for _, dir := range binaryPackageDirs(t, "..", "./cmd/klaviyo-etl") {
		entries, err := os.ReadDir(filepath.Join("..", dir))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if !e.IsDir() && !strings.HasSuffix(e.Name(), "_test.go") {
				needed = append(needed, filepath.ToSlash(filepath.Join(dir, e.Name())))
			}
		}
	}
	if len(needed) < 5 {
		t.Fatalf("found only %v: the walk over cmd/klaviyo-etl's imports is broken", needed)
	}
	for _, p := range needed {
		if pat, ok := dockerignored(patterns, p); ok {
			t.Errorf(".dockerignore pattern %q excludes %s, which the build needs", pat, p)
		}
	}
	// And it must keep the things that have no business in an image out.
	for _, p := range []string{".git/config", "klaviyo-export/_state.json", "deploy/README.md"} {
		if _, ok := dockerignored(patterns, p); !ok {
			t.Errorf(".dockerignore lets %s into the build context", p)
		}
	}
}

// dockerignored reports whether a path (slash-separated, relative to the
// context) or one of its parent folders matches a pattern.
func dockerignored(patterns []string, p string) (string, bool) {
	parts := strings.Split(p, "/")
	for i := 1; i <= len(parts); i++ {
		prefix := strings.Join(parts[:i], "/")
		for _, pat := range patterns {
			if rest, ok := strings.CutPrefix(pat, "**/"); ok {
				// **/x matches x at any depth.
				for j := 0; j < i; j++ {
					if m, _ := filepath.Match(rest, strings.Join(parts[j:i], "/")); m {
						return pat, true
					}
				}
				continue
			}
			if m, _ := filepath.Match(pat, prefix); m {
				return pat, true
			}
		}
	}
	return "", false
}

// binaryPackageDirs walks the module's imports from the package at start and
// returns the folders (relative to root) of every package of the module the
// binary is built from.
func binaryPackageDirs(t *testing.T, root, start string) []string {
	t.Helper()
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	first, _, _ := strings.Cut(string(gomod), "\n")
	module, ok := strings.CutPrefix(strings.TrimSpace(first), "module ")
	if !ok {
		t.Fatalf("go.mod does not start with a module line: %q", first)
	}
	seen := map[string]bool{}
	var dirs []string
	queue := []string{filepath.Clean(start)}
	fset := token.NewFileSet()
	for len(queue) > 0 {
		dir := queue[0]
		queue = queue[1:]
		if seen[dir] {
			continue
		}
		seen[dir] = true
		files, _ := filepath.Glob(filepath.Join(root, dir, "*.go"))
		if len(files) == 0 {
			continue
		}
		dirs = append(dirs, dir)
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			af, err := parser.ParseFile(fset, f, nil, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range af.Imports {
				path, _ := strconv.Unquote(imp.Path.Value)
				if rel, ok := strings.CutPrefix(path, module+"/"); ok {
					queue = append(queue, filepath.Clean(rel))
				}
			}
		}
	}
	return dirs
}

func TestDockerignored(t *testing.T) {
	patterns := []string{".git", "deploy", "**/*.test", "klaviyo-export-*", "bin"}
	tests := []struct {
		path string
		want bool
	}{
		{".git/HEAD", true},
		{"deploy/kubernetes/cronjob.yaml", true},
		{"load/parquet/parquet.test", true},
		{"x.test", true},
		{"klaviyo-export-demo/profiles/a.parquet", true},
		{"cmd/klaviyo-etl/main.go", false},
		{"cmd/bin/x.go", false},
		{"migrations/001_tables.sql", false},
	}
	for _, tt := range tests {
		if _, got := dockerignored(patterns, tt.path); got != tt.want {
			t.Errorf("dockerignored(%s) = %v, want %v", tt.path, got, tt.want)
		}
	}
}
