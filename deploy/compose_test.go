package deploy_test

import (
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
)

// The subset of the Compose format docker-compose.yml may use. Decoding is
// strict, so a key outside it (or misspelt) fails the test: extend these
// types, deliberately, when the file needs more.
type composeFile struct {
	Name     string                    `json:"name"`
	Services map[string]composeService `json:"services"`
	Volumes  map[string]*composeVolume `json:"volumes"`
}

type composeService struct {
	Image       string                       `json:"image"`
	Build       *composeBuild                `json:"build"`
	Command     []string                     `json:"command"`
	Environment map[string]string            `json:"environment"`
	DependsOn   map[string]composeDependency `json:"depends_on"`
	Healthcheck *composeHealthcheck          `json:"healthcheck"`
	Restart     string                       `json:"restart"`
	Volumes     []string                     `json:"volumes"`
	Profiles    []string                     `json:"profiles"`
}

type composeBuild struct {
	Context    string            `json:"context"`
	Dockerfile string            `json:"dockerfile"`
	Args       map[string]string `json:"args"`
}

type composeDependency struct {
	Condition string `json:"condition"`
}

type composeHealthcheck struct {
	Test        []string `json:"test"`
	Interval    string   `json:"interval"`
	Timeout     string   `json:"timeout"`
	Retries     int      `json:"retries"`
	StartPeriod string   `json:"start_period"`
}

// composeVolume allows only the short form (`name:` with no settings).
type composeVolume struct{}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	b, err := os.ReadFile("../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var f composeFile
	if err := decodeStrict(b, &f); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return f
}

func TestComposeServices(t *testing.T) {
	f := loadCompose(t)
	var names []string
	for n := range f.Services {
		names = append(names, n)
	}
	slices.Sort(names)
	want := []string{"klaviyo-etl", "klaviyo-etl-parquet", "postgres", "simulator"}
	if !slices.Equal(names, want) {
		t.Fatalf("services %v, want %v", names, want)
	}
	// Every service built from the Dockerfile shares one image, so one
	// build serves them all.
	image := f.Services["klaviyo-etl"].Image
	for name, s := range f.Services {
		for dep := range s.DependsOn {
			if _, ok := f.Services[dep]; !ok {
				t.Errorf("%s depends on unknown service %s", name, dep)
			}
		}
		for _, v := range s.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if !strings.HasPrefix(src, ".") && !strings.HasPrefix(src, "/") {
				if _, ok := f.Volumes[src]; !ok {
					t.Errorf("%s mounts volume %s, which volumes: does not declare", name, src)
				}
			}
		}
		if name == "postgres" {
			continue
		}
		if s.Build == nil || s.Build.Context != "." || (s.Build.Dockerfile != "" && s.Build.Dockerfile != "Dockerfile") {
			t.Errorf("%s: want build: {context: .} with the repository's Dockerfile", name)
		}
		if s.Image != image {
			t.Errorf("%s: image %q, want %q like klaviyo-etl", name, s.Image, image)
		}
	}
}

func TestComposePostgres(t *testing.T) {
	pg := loadCompose(t).Services["postgres"]
	if pg.Image != "postgres:16" {
		t.Errorf("image %q, want postgres:16", pg.Image)
	}
	for _, k := range []string{"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"} {
		if pg.Environment[k] == "" {
			t.Errorf("%s is not set", k)
		}
	}
	hc := pg.Healthcheck
	if hc == nil {
		t.Fatal("no healthcheck: the jobs wait for service_healthy")
	}
	if len(hc.Test) < 2 || (hc.Test[0] != "CMD" && hc.Test[0] != "CMD-SHELL") || !strings.HasPrefix(hc.Test[1], "pg_isready") {
		t.Fatalf("healthcheck test %v: want pg_isready", hc.Test)
	}
	// A probe over the Unix socket reports the init scripts' temporary
	// server as ready just before it restarts.
	if !slices.Contains(hc.Test, "-h") && !strings.Contains(strings.Join(hc.Test, " "), " -h ") {
		t.Error("pg_isready must probe over TCP (-h 127.0.0.1)")
	}
	if hc.Retries < 1 || hc.Interval == "" {
		t.Errorf("healthcheck needs interval and retries: %+v", hc)
	}
}

func TestComposeSimulator(t *testing.T) {
	sim := loadCompose(t).Services["simulator"]
	inv, err := parseArgs(sim.Command)
	if err != nil {
		t.Fatal(err)
	}
	if inv.command != "simulate" {
		t.Fatalf("command %q, want simulate", inv.command)
	}
	if inv.flags["addr"] != "0.0.0.0:8080" || inv.flags["profiles"] != "20000" {
		t.Errorf("flags %v: want --addr 0.0.0.0:8080 --profiles 20000", inv.flags)
	}
	// The image has no shell or HTTP client to probe with; the jobs wait
	// for service_started and retry (see the file's header).
	if sim.Healthcheck != nil {
		t.Error("simulator healthcheck: distroless has nothing to run it with")
	}
}

func TestComposeJobs(t *testing.T) {
	f := loadCompose(t)
	pg := f.Services["postgres"]
	simInv, err := parseArgs(f.Services["simulator"].Command)
	if err != nil {
		t.Fatal(err)
	}
	simKey := simInv.flags["api-key"]
	if simKey == "" {
		simKey = "pk_test" // the contract's default
	}
	_, simPort, err := net.SplitHostPort(simInv.flags["addr"])
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		service  string
		sink     string
		profiles []string
		deps     map[string]string
	}{
		{"klaviyo-etl", "postgres", nil, map[string]string{"postgres": "service_healthy", "simulator": "service_started"}},
		{"klaviyo-etl-parquet", "parquet", []string{"parquet"}, map[string]string{"simulator": "service_started"}},
	}
	for _, tt := range tests {
		t.Run(tt.service, func(t *testing.T) {
			s := f.Services[tt.service]
			inv, err := parseArgs(s.Command)
			if err != nil {
				t.Fatal(err)
			}
			if inv.command != "run" || inv.flags["sink"] != tt.sink {
				t.Errorf("command %v: want run --sink %s", s.Command, tt.sink)
			}
			if s.Restart != "no" {
				t.Errorf("restart %q: a batch job runs once", s.Restart)
			}
			if !slices.Equal(s.Profiles, tt.profiles) {
				t.Errorf("profiles %v, want %v", s.Profiles, tt.profiles)
			}
			deps := map[string]string{}
			for k, d := range s.DependsOn {
				deps[k] = d.Condition
			}
			if len(deps) != len(tt.deps) {
				t.Errorf("depends_on %v, want %v", deps, tt.deps)
			}
			for k, want := range tt.deps {
				if deps[k] != want {
					t.Errorf("depends_on %s: condition %q, want %q", k, deps[k], want)
				}
			}
			for k := range s.Environment {
				if !slices.Contains(contractEnv, k) {
					t.Errorf("environment %s is not a variable of the contract %v", k, contractEnv)
				}
			}
			if got := s.Environment["KLAVIYO_API_KEY"]; got != simKey {
				t.Errorf("KLAVIYO_API_KEY %q, but the simulator accepts %q", got, simKey)
			}
			base, err := url.Parse(s.Environment["KLAVIYO_BASE_URL"])
			if err != nil || base.Scheme != "http" || base.Hostname() != "simulator" || base.Port() != simPort {
				t.Errorf("KLAVIYO_BASE_URL %q: want http://simulator:%s", s.Environment["KLAVIYO_BASE_URL"], simPort)
			}
			switch tt.sink {
			case "postgres":
				u, err := url.Parse(s.Environment["DATABASE_URL"])
				if err != nil {
					t.Fatalf("DATABASE_URL: %v", err)
				}
				pass, _ := u.User.Password()
				if u.Scheme != "postgres" || u.Hostname() != "postgres" || u.Port() != "5432" ||
					u.User.Username() != pg.Environment["POSTGRES_USER"] || pass != pg.Environment["POSTGRES_PASSWORD"] ||
					strings.TrimPrefix(u.Path, "/") != pg.Environment["POSTGRES_DB"] {
					t.Errorf("DATABASE_URL %q does not match the postgres service", u.Redacted())
				}
			case "parquet":
				out := inv.flags["out"]
				if out != "/data/klaviyo-export" {
					t.Errorf("--out %q, want /data/klaviyo-export", out)
				}
				onVolume := false
				for _, v := range s.Volumes {
					src, dst, _ := strings.Cut(v, ":")
					dst, _, _ = strings.Cut(dst, ":")
					if _, named := f.Volumes[src]; named && strings.HasPrefix(out, strings.TrimSuffix(dst, "/")+"/") {
						onVolume = true
					}
				}
				if !onVolume {
					t.Errorf("--out %s is not on a named volume (volumes %v)", out, s.Volumes)
				}
			}
		})
	}
	// The Dockerfile prepares /data for the non-root user; the named volume
	// takes its owner from there.
	if d := readDockerfile(t); !strings.Contains(d.text, "--chown=65532:65532 /out/data /data") {
		t.Error("Dockerfile does not give /data to the runtime user")
	}
}
