package accounts

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestLoadValid(t *testing.T) {
	td, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		file string
		want []Account
	}{
		{"valid.yaml", []Account{
			{Name: "acme", APIKeyFile: "/var/run/secrets/klaviyo-accounts/acme", PGSchema: "klaviyo_acme",
				Out: "/data/klaviyo-export/acme", BudgetShare: 0.5},
			{Name: "globex", APIKeyFile: filepath.Join(td, "keys/globex"), PGSchema: "klaviyo_globex",
				Out: filepath.Join(td, "export/globex"), BaseURL: "http://simulator:8080", Revision: "2025-10-15"},
			{Name: "initech-eu", APIKeyFile: "/var/run/secrets/klaviyo-accounts/initech-eu", PGSchema: "_initech",
				Out: "/data/klaviyo-export/initech-eu", BudgetShare: 1, Revision: "2026-07-15.pre"},
		}},
		{"valid.json", []Account{
			{Name: "acme", APIKeyFile: "/keys/acme", Out: "/data/acme"},
			{Name: "globex", APIKeyFile: "/keys/globex", Out: "/data/globex", BudgetShare: 0.25},
		}},
		{"postgres-only.yaml", []Account{
			{Name: "acme", APIKeyFile: "/keys/acme", PGSchema: "acme"},
			{Name: "globex", APIKeyFile: "/keys/globex", PGSchema: "globex"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			path := filepath.Join("testdata", tt.file)
			f, err := Load(path)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if f.Path != path {
				t.Errorf("Path = %q, want %q", f.Path, path)
			}
			if !reflect.DeepEqual(f.Accounts, tt.want) {
				t.Errorf("Accounts =\n%+v\nwant\n%+v", f.Accounts, tt.want)
			}
		})
	}
}

func TestLoadInvalid(t *testing.T) {
	tests := map[string]struct {
		want    []string // each must appear in the error
		notWant []string // none may appear in the error
	}{
		"unknown-field":       {want: []string{`unknown field "accounts[0].api_keyfile"`}},
		"wrong-case":          {want: []string{`API_KEY_FILE`}},
		"unknown-top":         {want: []string{`unknown field "version"`}},
		"duplicate-yaml-key":  {want: []string{`"pg_schema" already set`}},
		"duplicate-name":      {want: []string{`accounts "acme" and "acme" have the same name "acme"`}},
		"duplicate-schema":    {want: []string{`accounts "acme" and "globex" have the same pg_schema "klaviyo"`}},
		"duplicate-out":       {want: []string{`have the same out "/data/x"`}},
		"nested-out":          {want: []string{`"acme" and "globex": out "/data/export" and "/data/export/globex" are nested`}},
		"duplicate-key-file":  {want: []string{`have the same api_key_file "/keys/same"`}},
		"budget-zero":         {want: []string{`accounts[0] "acme": budget_share 0: want a number in (0, 1]`}},
		"budget-over":         {want: []string{`budget_share 1.5`}},
		"budget-string":       {want: []string{`cannot unmarshal string`, `budget_share`}},
		"missing-key-file":    {want: []string{`accounts[0] "acme": api_key_file is missing`}},
		"missing-name":        {want: []string{`accounts[0] (no name): name is missing`}},
		"bad-name":            {want: []string{`name "Acme_EU": want a DNS label`}},
		"no-target":           {want: []string{`no target`}},
		"mixed-targets":       {want: []string{`out is set on 1 of 2 accounts`}, notWant: []string{"pg_schema is set"}},
		"bad-schema":          {want: []string{`pg_schema "Klaviyo-Acme"`}},
		"reserved-schema":     {want: []string{`reserves names starting with pg_`}},
		"bad-base-url":        {want: []string{`base_url "a.klaviyo.com": want an http or https URL`}},
		"base-url-userinfo":   {want: []string{`must not hold a user or password`}, notWant: []string{"hunter2"}},
		"base-url-unparsable": {want: []string{`base_url: not a URL`}, notWant: []string{"hunter2"}},
		"bad-revision":        {want: []string{`revision "2026-13-45": not a date`}},
		"empty":               {want: []string{`no accounts`}},
		"no-accounts":         {want: []string{`no accounts`}},
		"bare-list":           {want: []string{`bare list`}},
		"not-yaml":            {want: []string{`decode`}},
		"many-problems": {want: []string{
			`accounts[0] "Acme": name "Acme"`, `accounts[0] "Acme": budget_share 2`,
			`accounts[1] "globex": api_key_file is missing`, `have the same pg_schema "a"`,
		}},
	}
	// Every invalid fixture must have a row, so none is left untested.
	files, err := filepath.Glob(filepath.Join("testdata", "invalid-*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), "invalid-"), ".yaml")
		if _, ok := tests[name]; !ok {
			t.Errorf("fixture %s has no test case", f)
		}
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join("testdata", "invalid-"+name+".yaml")
			f, err := Load(path)
			if err == nil {
				t.Fatalf("Load succeeded: %+v", f)
			}
			msg := err.Error()
			t.Log(msg)
			if !strings.Contains(msg, path) {
				t.Errorf("error does not name the file: %s", msg)
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error lacks %q:\n%s", w, msg)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(msg, w) {
					t.Errorf("error holds %q:\n%s", w, msg)
				}
			}
		})
	}
}

func TestLoadUnreadable(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, []byte("# "+strings.Repeat("x", maxFileSize)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path, want string
	}{
		{filepath.Join(dir, "missing.yaml"), "no such file"},
		{dir, "is a directory"},
		{big, "larger than"},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.path), func(t *testing.T) {
			_, err := Load(tt.path)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load(%s) = %v, want an error with %q", tt.path, err, tt.want)
			}
		})
	}
}

func TestPickAndNamed(t *testing.T) {
	f, err := Load(filepath.Join("testdata", "postgres-only.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		index    int
		wantName string
		wantErr  string
	}{
		{0, "acme", ""},
		{1, "globex", ""},
		{2, "", "index 2 is out of range"},
		{-1, "", "index -1 is out of range"},
	}
	for _, tt := range tests {
		a, err := f.Pick(tt.index)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "has 2 accounts") {
				t.Errorf("Pick(%d) = %+v, %v; want error %q", tt.index, a, err, tt.wantErr)
			}
			continue
		}
		if err != nil || a.Name != tt.wantName {
			t.Errorf("Pick(%d) = %+v, %v; want %s", tt.index, a, err, tt.wantName)
		}
	}
	if a, err := f.Named("globex"); err != nil || a.PGSchema != "globex" {
		t.Errorf("Named(globex) = %+v, %v", a, err)
	}
	if _, err := f.Named("nobody"); err == nil || !strings.Contains(err.Error(), `no account "nobody"`) {
		t.Errorf("Named(nobody) = %v", err)
	}
}

func TestIndexFromEnv(t *testing.T) {
	tests := []struct {
		value   string
		want    int
		wantErr string
	}{
		{"0", 0, ""},
		{"7", 7, ""},
		{"120", 120, ""},
		{"", 0, "JOB_COMPLETION_INDEX is not set"},
		{"abc", 0, `JOB_COMPLETION_INDEX="abc" is not a completion index`},
		{"-1", 0, "not a completion index"},
		{"+1", 0, "not a completion index"},
		{" 1", 0, "not a completion index"},
		{"1.0", 0, "not a completion index"},
		{"99999999999999999999999", 0, "not a completion index"},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			getenv := func(k string) string {
				if k == IndexEnv {
					return tt.value
				}
				return ""
			}
			got, err := IndexFromEnv(getenv)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("IndexFromEnv = %d, %v; want error %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("IndexFromEnv = %d, %v; want %d", got, err, tt.want)
			}
		})
	}
}

// FuzzParse checks that no input panics the parser and that whatever it
// accepts keeps the file's invariants.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*"))
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		accts, err := parse(data, "/base")
		if err != nil {
			return
		}
		if len(accts) == 0 {
			t.Fatal("accepted a file without accounts")
		}
		names := map[string]bool{}
		for _, a := range accts {
			if names[a.Name] {
				t.Fatalf("accepted duplicate name %q", a.Name)
			}
			names[a.Name] = true
			if a.BudgetShare != 0 && !(a.BudgetShare > 0 && a.BudgetShare <= 1) {
				t.Fatalf("accepted budget_share %v", a.BudgetShare)
			}
			if !filepath.IsAbs(a.APIKeyFile) || (a.Out != "" && !filepath.IsAbs(a.Out)) {
				t.Fatalf("left a relative path: %+v", a)
			}
			if a.PGSchema == "" && a.Out == "" {
				t.Fatalf("accepted an account without a target: %+v", a)
			}
		}
	})
}
