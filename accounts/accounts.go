package accounts

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// Account is one entry of the accounts file, validated, with paths made
// absolute.
type Account struct {
	// Name identifies the account in logs and metrics; a DNS label.
	Name string
	// APIKeyFile is the file holding the account's private API key.
	APIKeyFile string
	// PGSchema is the PostgreSQL schema for --sink postgres; empty when the
	// file configures no PostgreSQL targets.
	PGSchema string
	// Out is the Parquet output folder for --sink parquet; empty when the
	// file configures no Parquet targets.
	Out string
	// BudgetShare is the share of the account's rate budget to use, in
	// (0, 1]; zero when the entry leaves it out, so run's --budget-share
	// (default 1) applies.
	BudgetShare float64
	// BaseURL and Revision override run's --base-url and --revision when not
	// empty.
	BaseURL  string
	Revision string
}

// File is a loaded and validated accounts file.
type File struct {
	// Path is the path the file was loaded from.
	Path     string
	Accounts []Account
}

// maxFileSize bounds what Load reads: an accounts file is a few lines per
// account, and a path to a device or a huge file is a mistake to report, not
// to swallow.
const maxFileSize = 1 << 20

// Load reads, decodes and validates the accounts file at path. All problems
// found are reported together.
func Load(path string) (File, error) {
	f, err := os.Open(path)
	if err != nil {
		return File{}, fmt.Errorf("accounts file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return File{}, fmt.Errorf("accounts file %s: %w", path, err)
	}
	if len(data) > maxFileSize {
		return File{}, fmt.Errorf("accounts file %s: larger than %d bytes", path, maxFileSize)
	}
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return File{}, fmt.Errorf("accounts file %s: %w", path, err)
	}
	accts, err := parse(data, dir)
	if err != nil {
		return File{}, fmt.Errorf("accounts file %s: %w", path, err)
	}
	return File{Path: path, Accounts: accts}, nil
}

// Pick returns the entry at index, the completion index of an Indexed Job's
// pod.
func (f File) Pick(index int) (Account, error) {
	if index < 0 || index >= len(f.Accounts) {
		return Account{}, fmt.Errorf("index %d is out of range: %s has %d accounts (index 0 to %d); the Job's completions must equal the number of accounts",
			index, f.Path, len(f.Accounts), len(f.Accounts)-1)
	}
	return f.Accounts[index], nil
}

// Named returns the entry called name, for running one account by hand.
func (f File) Named(name string) (Account, error) {
	for _, a := range f.Accounts {
		if a.Name == name {
			return a, nil
		}
	}
	return Account{}, fmt.Errorf("no account %q in %s", name, f.Path)
}

// IndexEnv is the variable Kubernetes sets in every pod of an Indexed Job.
const IndexEnv = "JOB_COMPLETION_INDEX"

// IndexFromEnv reads the pod's completion index from JOB_COMPLETION_INDEX.
func IndexFromEnv(getenv func(string) string) (int, error) {
	v := getenv(IndexEnv)
	if v == "" {
		return 0, fmt.Errorf("%s is not set: an accounts file is read by the pods of a Kubernetes Job with completionMode: Indexed, which sets it (set it by hand to run one entry elsewhere)", IndexEnv)
	}
	n, err := strconv.Atoi(v)
	if err != nil || v[0] < '0' || v[0] > '9' {
		return 0, fmt.Errorf("%s=%q is not a completion index (want a number from 0)", IndexEnv, v)
	}
	return n, nil
}

// entry is an account as written in the file; pointers tell an omitted value
// from a zero one.
type entry struct {
	Name        string   `json:"name"`
	APIKeyFile  string   `json:"api_key_file"`
	PGSchema    string   `json:"pg_schema"`
	Out         string   `json:"out"`
	BudgetShare *float64 `json:"budget_share"`
	BaseURL     string   `json:"base_url"`
	Revision    string   `json:"revision"`
}

type document struct {
	Accounts []entry `json:"accounts"`
}

// parse decodes data strictly and validates it; relative paths are joined to
// dir.
func parse(data []byte, dir string) ([]Account, error) {
	j, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	if t := bytes.TrimSpace(j); len(t) > 0 && t[0] == '[' {
		return nil, errors.New("decode: the file is a bare list; put the entries under a top-level accounts: key")
	}
	var doc *document
	// sigs.k8s.io/json, unlike encoding/json, matches keys case-sensitively
	// and reports every unknown or duplicate one, as the Kubernetes API
	// server does.
	strict, err := sigsjson.UnmarshalStrict(j, &doc, sigsjson.DisallowUnknownFields, sigsjson.DisallowDuplicateFields)
	if err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	if len(strict) > 0 {
		return nil, fmt.Errorf("decode: %w", errors.Join(strict...))
	}
	if doc == nil || len(doc.Accounts) == 0 {
		return nil, errors.New("no accounts: want a top-level accounts: list with at least one entry")
	}
	accts := make([]Account, len(doc.Accounts))
	var errs []error
	for i, e := range doc.Accounts {
		a, problems := e.account(dir)
		for _, err := range problems {
			errs = append(errs, fmt.Errorf("accounts[%d] %s: %w", i, e.label(), err))
		}
		accts[i] = a
	}
	errs = append(errs, checkTogether(accts)...)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return accts, nil
}

func (e entry) label() string {
	if e.Name == "" {
		return "(no name)"
	}
	return fmt.Sprintf("%q", e.Name)
}

var (
	// dnsLabel is RFC 1123's label, as Kubernetes names use it.
	dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	// pgName is an identifier PostgreSQL keeps as written without quotes, so
	// the schema is the same whether a person types it quoted or not.
	pgName   = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)
	revision = regexp.MustCompile(`^(\d{4}-\d{2}-\d{2})(\.[a-z0-9]+)?$`)
)

// account validates one entry on its own.
func (e entry) account(dir string) (Account, []error) {
	var errs []error
	a := Account{Name: e.Name, PGSchema: e.PGSchema, BaseURL: e.BaseURL, Revision: e.Revision}
	switch {
	case e.Name == "":
		errs = append(errs, errors.New("name is missing"))
	case len(e.Name) > 63 || !dnsLabel.MatchString(e.Name):
		errs = append(errs, fmt.Errorf("name %q: want a DNS label (lowercase letters, digits and '-', at most 63, starting and ending with a letter or digit)", e.Name))
	}
	if e.APIKeyFile == "" {
		errs = append(errs, errors.New("api_key_file is missing"))
	} else {
		a.APIKeyFile = absPath(dir, e.APIKeyFile)
	}
	if e.PGSchema == "" && e.Out == "" {
		errs = append(errs, errors.New("no target: set pg_schema (--sink postgres), out (--sink parquet) or both"))
	}
	if e.PGSchema != "" {
		switch {
		case len(e.PGSchema) > 63 || !pgName.MatchString(e.PGSchema):
			errs = append(errs, fmt.Errorf("pg_schema %q: want lowercase letters, digits and '_', at most 63, not starting with a digit", e.PGSchema))
		case strings.HasPrefix(e.PGSchema, "pg_"):
			errs = append(errs, fmt.Errorf("pg_schema %q: PostgreSQL reserves names starting with pg_", e.PGSchema))
		}
	}
	if e.Out != "" {
		a.Out = absPath(dir, e.Out)
	}
	if e.BudgetShare != nil {
		a.BudgetShare = *e.BudgetShare
		if !(a.BudgetShare > 0 && a.BudgetShare <= 1) {
			errs = append(errs, fmt.Errorf("budget_share %v: want a number in (0, 1]", a.BudgetShare))
		}
	}
	if e.BaseURL != "" {
		if err := checkBaseURL(e.BaseURL); err != nil {
			errs = append(errs, err)
		}
	}
	if e.Revision != "" {
		m := revision.FindStringSubmatch(e.Revision)
		if m == nil {
			errs = append(errs, fmt.Errorf("revision %q: want YYYY-MM-DD, optionally with a suffix such as .pre", e.Revision))
		} else if _, err := time.Parse(time.DateOnly, m[1]); err != nil {
			errs = append(errs, fmt.Errorf("revision %q: not a date", e.Revision))
		}
	}
	return a, errs
}

func checkBaseURL(s string) error {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		// url.Parse's error quotes the whole URL, credentials included.
		return errors.New("base_url: not a URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("base_url %q: want an http or https URL", s)
	case u.Host == "":
		return fmt.Errorf("base_url %q: no host", s)
	case u.User != nil:
		// Neither this nor the next message echoes the URL: it may hold a
		// credential.
		return errors.New("base_url: must not hold a user or password")
	case u.RawQuery != "" || u.Fragment != "":
		return errors.New("base_url: must not have a query or fragment")
	}
	return nil
}

func absPath(dir, p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(dir, p)
}

// checkTogether applies the rules that span entries: distinct names, keys and
// targets, and targets for the same sinks on every entry.
func checkTogether(accts []Account) []error {
	var errs []error
	seen := map[string]map[string]string{"name": {}, "api_key_file": {}, "pg_schema": {}, "out": {}}
	unique := func(field, value, name string) {
		if value == "" {
			return
		}
		if prev, ok := seen[field][value]; ok {
			errs = append(errs, fmt.Errorf("accounts %q and %q have the same %s %q", prev, name, field, value))
			return
		}
		seen[field][value] = name
	}
	var withSchema, withOut int
	for _, a := range accts {
		unique("name", a.Name, a.Name)
		unique("api_key_file", a.APIKeyFile, a.Name)
		unique("pg_schema", a.PGSchema, a.Name)
		unique("out", a.Out, a.Name)
		if a.PGSchema != "" {
			withSchema++
		}
		if a.Out != "" {
			withOut++
		}
	}
	if withSchema > 0 && withSchema < len(accts) {
		errs = append(errs, fmt.Errorf("pg_schema is set on %d of %d accounts: set it on all or none", withSchema, len(accts)))
	}
	if withOut > 0 && withOut < len(accts) {
		errs = append(errs, fmt.Errorf("out is set on %d of %d accounts: set it on all or none", withOut, len(accts)))
	}
	// A Parquet sink owns its whole folder (it removes files its state does
	// not list), so one account's folder inside another's would be eaten.
	for i, a := range accts {
		for _, b := range accts[i+1:] {
			if a.Out == "" || b.Out == "" || a.Out == b.Out {
				continue
			}
			if inside(a.Out, b.Out) || inside(b.Out, a.Out) {
				errs = append(errs, fmt.Errorf("accounts %q and %q: out %q and %q are nested; each account needs a folder of its own", a.Name, b.Name, a.Out, b.Out))
			}
		}
	}
	return errs
}

// inside reports whether path p lies under folder dir; both are clean and
// absolute.
func inside(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}
