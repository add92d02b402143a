package deploy_test

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // the CronJob's timeZone must load on any machine

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"github.com/klaviyo-etl/klaviyo-etl/accounts"
)

// objects is every document of every manifest, decoded into its API type.
type objects struct {
	secrets    map[string]*corev1.Secret
	configMaps map[string]*corev1.ConfigMap
	cronJobs   map[string]*batchv1.CronJob
	jobs       map[string]*batchv1.Job
	files      map[string]string // "Kind/name" → file, for messages
}

// workload is the part of a CronJob or Job that runs pods.
type workload struct {
	id   string // "CronJob/klaviyo-etl"
	spec *batchv1.JobSpec
}

func (o objects) workloads() []workload {
	var ws []workload
	for name, cj := range o.cronJobs {
		ws = append(ws, workload{"CronJob/" + name, &cj.Spec.JobTemplate.Spec})
	}
	for name, j := range o.jobs {
		ws = append(ws, workload{"Job/" + name, &j.Spec})
	}
	slices.SortFunc(ws, func(a, b workload) int { return strings.Compare(a.id, b.id) })
	return ws
}

// loadObjects decodes every YAML document under deploy/kubernetes strictly
// into the type its apiVersion and kind name.
func loadObjects(t *testing.T) objects {
	t.Helper()
	o := objects{
		secrets:    map[string]*corev1.Secret{},
		configMaps: map[string]*corev1.ConfigMap{},
		cronJobs:   map[string]*batchv1.CronJob{},
		jobs:       map[string]*batchv1.Job{},
		files:      map[string]string{},
	}
	files, err := filepath.Glob(filepath.Join("kubernetes", "*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range files {
		if strings.HasSuffix(file, ".md") {
			continue
		}
		if ext := filepath.Ext(file); ext != ".yaml" {
			t.Errorf("%s: manifests are .yaml files (kubectl apply -f on the folder would pick this up)", file)
			continue
		}
		docs := splitDocuments(t, file)
		if len(docs) == 0 {
			t.Errorf("%s: no documents", file)
		}
		for i, doc := range docs {
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal(doc, &tm); err != nil {
				t.Fatalf("%s document %d: %v", file, i, err)
			}
			var obj interface {
				GetName() string
				GetNamespace() string
			}
			switch tm.APIVersion + " " + tm.Kind {
			case "v1 Secret":
				obj = &corev1.Secret{}
			case "v1 ConfigMap":
				obj = &corev1.ConfigMap{}
			case "batch/v1 CronJob":
				obj = &batchv1.CronJob{}
			case "batch/v1 Job":
				obj = &batchv1.Job{}
			default:
				t.Errorf("%s document %d: apiVersion %q kind %q is not one this test knows", file, i, tm.APIVersion, tm.Kind)
				continue
			}
			if err := decodeStrict(doc, obj); err != nil {
				t.Errorf("%s document %d (%s): %v", file, i, tm.Kind, err)
				continue
			}
			name := obj.GetName()
			for _, msg := range validation.IsDNS1123Subdomain(name) {
				t.Errorf("%s: %s name %q: %s", file, tm.Kind, name, msg)
			}
			if ns := obj.GetNamespace(); ns != "" {
				t.Errorf("%s: %s/%s sets namespace %q: leave it to kubectl -n", file, tm.Kind, name, ns)
			}
			id := tm.Kind + "/" + name
			if prev, dup := o.files[id]; dup {
				t.Errorf("%s and %s both define %s", prev, file, id)
			}
			o.files[id] = file
			switch v := obj.(type) {
			case *corev1.Secret:
				o.secrets[name] = v
			case *corev1.ConfigMap:
				o.configMaps[name] = v
			case *batchv1.CronJob:
				o.cronJobs[name] = v
			case *batchv1.Job:
				o.jobs[name] = v
			}
		}
	}
	return o
}

func TestManifestsDecodeStrictly(t *testing.T) {
	o := loadObjects(t)
	for _, id := range []string{
		"CronJob/klaviyo-etl", "Job/klaviyo-etl-accounts", "ConfigMap/klaviyo-etl-accounts",
		"Secret/klaviyo-etl", "Secret/klaviyo-etl-accounts",
	} {
		if _, ok := o.files[id]; !ok {
			t.Errorf("no manifest defines %s", id)
		}
	}
	for name, s := range o.secrets {
		if o.files["Secret/"+name] != filepath.Join("kubernetes", "secret.example.yaml") {
			t.Errorf("Secret %s lives outside secret.example.yaml", name)
		}
		if len(s.Data) > 0 {
			t.Errorf("Secret %s: use stringData with placeholders, not data", name)
		}
		for k, v := range s.StringData {
			if !strings.Contains(v, "REPLACE_ME") {
				t.Errorf("Secret %s key %s: %q does not look like a placeholder (want REPLACE_ME in it)", name, k, v)
			}
		}
	}
}

func TestWorkloadsAreLockedDown(t *testing.T) {
	o := loadObjects(t)
	ws := o.workloads()
	if len(ws) < 2 {
		t.Fatalf("found %d workloads, want the CronJob and the Indexed Job", len(ws))
	}
	image := ""
	for _, w := range ws {
		t.Run(w.id, func(t *testing.T) {
			js := w.spec
			pod := js.Template.Spec
			if js.ActiveDeadlineSeconds == nil || *js.ActiveDeadlineSeconds <= 0 {
				t.Error("activeDeadlineSeconds is not set: a hung run would hold its target for ever")
			}
			if js.BackoffLimit == nil && js.BackoffLimitPerIndex == nil {
				t.Error("neither backoffLimit nor backoffLimitPerIndex is set")
			}
			if pod.RestartPolicy != corev1.RestartPolicyNever {
				t.Errorf("restartPolicy %q: want Never (podFailurePolicy needs it; the Job retries)", pod.RestartPolicy)
			}
			checkFailurePolicy(t, js)
			if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
				t.Error("automountServiceAccountToken must be false: the job never calls the Kubernetes API")
			}
			if g := pod.TerminationGracePeriodSeconds; g == nil || *g < 30 {
				t.Error("terminationGracePeriodSeconds must leave at least 30s to commit a checkpoint after SIGTERM")
			}
			psc := pod.SecurityContext
			switch {
			case psc == nil:
				t.Fatal("no pod securityContext")
			case psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot:
				t.Error("pod runAsNonRoot is not true")
			case psc.RunAsUser == nil || *psc.RunAsUser != imageUser:
				t.Errorf("pod runAsUser is not %d (the image's user)", imageUser)
			case psc.FSGroup == nil:
				t.Error("pod fsGroup is not set: the non-root user could not read the mounted keys (mode 0440)")
			case psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault:
				t.Error("pod seccompProfile is not RuntimeDefault")
			}
			if len(pod.InitContainers) > 0 || len(pod.Containers) != 1 {
				t.Fatalf("want exactly one container, got %d (+%d init)", len(pod.Containers), len(pod.InitContainers))
			}
			c := pod.Containers[0]
			if c.Name != "klaviyo-etl" {
				t.Errorf("container name %q: podFailurePolicy rules name klaviyo-etl", c.Name)
			}
			checkImage(t, c.Image)
			if image == "" {
				image = c.Image
			} else if c.Image != image {
				t.Errorf("image %s differs from %s in another manifest", c.Image, image)
			}
			if len(c.Command) > 0 {
				t.Errorf("command %v overrides the image's ENTRYPOINT; use args", c.Command)
			}
			sc := c.SecurityContext
			switch {
			case sc == nil:
				t.Fatal("no container securityContext")
			case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
				t.Error("allowPrivilegeEscalation is not false")
			case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
				t.Error("readOnlyRootFilesystem is not true")
			case sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot:
				t.Error("container runAsNonRoot is not true")
			case sc.RunAsUser != nil && *sc.RunAsUser != imageUser:
				t.Errorf("container runAsUser %d is not %d", *sc.RunAsUser, imageUser)
			case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0:
				t.Error("capabilities must drop ALL and add none")
			case sc.Privileged != nil && *sc.Privileged:
				t.Error("privileged")
			}
			for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				req, okReq := c.Resources.Requests[r]
				lim, okLim := c.Resources.Limits[r]
				if !okReq || !okLim {
					t.Errorf("resources: %s needs a request and a limit", r)
					continue
				}
				if req.Sign() <= 0 || lim.Cmp(req) < 0 {
					t.Errorf("resources: %s request %s, limit %s", r, req.String(), lim.String())
				}
			}
			// The root filesystem is read-only: /tmp must be a volume.
			tmp := false
			for _, m := range c.VolumeMounts {
				if m.MountPath == "/tmp" {
					v := findVolume(pod, m.Name)
					tmp = v != nil && v.EmptyDir != nil && !m.ReadOnly
				}
			}
			if !tmp {
				t.Error("/tmp is not a writable emptyDir")
			}
			checkEnv(t, o, c)
			checkVolumes(t, o, pod)
			inv, err := parseArgs(c.Args)
			if err != nil {
				t.Fatalf("args %v: %v", c.Args, err)
			}
			if inv.command != "run" {
				t.Errorf("command %q, want run", inv.command)
			}
			for flag, want := range map[string]string{"log-format": "json", "progress": "never"} {
				if got := inv.flags[flag]; got != want {
					t.Errorf("--%s %q, want %q (logs are collected, not watched)", flag, got, want)
				}
			}
			if _, ok := inv.flags["api-key"]; ok {
				t.Error("--api-key puts the key in the pod spec: use --api-key-file")
			}
			if inv.flags["sink"] == "postgres" && !hasEnv(c, "DATABASE_URL") && inv.flags["database-url"] == "" {
				t.Error("--sink postgres without DATABASE_URL")
			}
		})
	}
}

// checkFailurePolicy wants a configuration error (exit 2) to stop retries
// and a disruption not to count as a failure.
func checkFailurePolicy(t *testing.T, js *batchv1.JobSpec) {
	t.Helper()
	if js.PodFailurePolicy == nil {
		t.Error("no podFailurePolicy")
		return
	}
	var exit2, disruption bool
	for _, r := range js.PodFailurePolicy.Rules {
		if e := r.OnExitCodes; e != nil && e.Operator == batchv1.PodFailurePolicyOnExitCodesOpIn && slices.Contains(e.Values, 2) {
			exit2 = r.Action == batchv1.PodFailurePolicyActionFailJob || r.Action == batchv1.PodFailurePolicyActionFailIndex
			if e.ContainerName == nil || *e.ContainerName != "klaviyo-etl" {
				t.Error("podFailurePolicy exit-code rule does not name the container klaviyo-etl")
			}
		}
		for _, p := range r.OnPodConditions {
			if p.Type == corev1.DisruptionTarget && r.Action == batchv1.PodFailurePolicyActionIgnore {
				disruption = true
			}
		}
	}
	if !exit2 {
		t.Error("podFailurePolicy does not fail at once on exit code 2 (configuration error)")
	}
	if !disruption {
		t.Error("podFailurePolicy does not ignore DisruptionTarget")
	}
	if slices.ContainsFunc(js.PodFailurePolicy.Rules, func(r batchv1.PodFailurePolicyRule) bool {
		return r.Action == batchv1.PodFailurePolicyActionFailIndex
	}) && js.BackoffLimitPerIndex == nil {
		t.Error("FailIndex needs backoffLimitPerIndex")
	}
}

func checkImage(t *testing.T, image string) {
	t.Helper()
	last := image[strings.LastIndex(image, "/")+1:]
	_, tag, ok := strings.Cut(last, ":")
	if !ok || tag == "" || tag == "latest" {
		t.Errorf("image %q: pin a tag other than latest", image)
	}
}

func findVolume(pod corev1.PodSpec, name string) *corev1.Volume {
	for i := range pod.Volumes {
		if pod.Volumes[i].Name == name {
			return &pod.Volumes[i]
		}
	}
	return nil
}

func hasEnv(c corev1.Container, name string) bool {
	return slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == name })
}

// checkEnv allows the contract's variables plus the Go runtime's, and wants
// every secret the environment reads to exist in secret.example.yaml.
func checkEnv(t *testing.T, o objects, c corev1.Container) {
	t.Helper()
	if len(c.EnvFrom) > 0 {
		t.Error("envFrom imports unknown names: list each variable")
	}
	for _, e := range c.Env {
		switch {
		case e.Name == "KLAVIYO_API_KEY":
			t.Error("KLAVIYO_API_KEY in the environment: mount the key as a file (--api-key-file)")
		case e.Name == "GOMEMLIMIT" || e.Name == "GOMAXPROCS":
		case !slices.Contains(contractEnv, e.Name):
			t.Errorf("env %s is not a variable of the contract %v", e.Name, contractEnv)
		}
		if e.Name == "DATABASE_URL" && (e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil) {
			t.Error("DATABASE_URL must come from a secretKeyRef: it holds a password")
		}
		if strings.Contains(e.Value, "pk_") {
			t.Errorf("env %s holds what looks like an API key", e.Name)
		}
		if e.ValueFrom == nil {
			continue
		}
		if ref := e.ValueFrom.SecretKeyRef; ref != nil {
			if err := o.secretHas(ref.Name, ref.Key); err != nil {
				t.Errorf("env %s: %v", e.Name, err)
			}
		}
		if ref := e.ValueFrom.ConfigMapKeyRef; ref != nil {
			if err := o.configMapHas(ref.Name, ref.Key); err != nil {
				t.Errorf("env %s: %v", e.Name, err)
			}
		}
	}
}

// checkVolumes wants every mount backed by a volume, every volume mounted,
// and every Secret or ConfigMap item to exist.
func checkVolumes(t *testing.T, o objects, pod corev1.PodSpec) {
	t.Helper()
	mounted := map[string]bool{}
	for _, c := range pod.Containers {
		for _, m := range c.VolumeMounts {
			mounted[m.Name] = true
			if findVolume(pod, m.Name) == nil {
				t.Errorf("volumeMount %s: no such volume", m.Name)
			}
		}
	}
	for _, v := range pod.Volumes {
		if !mounted[v.Name] {
			t.Errorf("volume %s is not mounted", v.Name)
		}
		switch {
		case v.Secret != nil:
			if _, ok := o.secrets[v.Secret.SecretName]; !ok {
				t.Errorf("volume %s: no Secret %s in secret.example.yaml", v.Name, v.Secret.SecretName)
			}
			for _, it := range v.Secret.Items {
				if err := o.secretHas(v.Secret.SecretName, it.Key); err != nil {
					t.Errorf("volume %s: %v", v.Name, err)
				}
			}
			// Owner and fsGroup may read; nobody may write or execute.
			if m := v.Secret.DefaultMode; m == nil || *m != 0o440 {
				t.Errorf("volume %s: defaultMode must be 0440 (read by the user and fsGroup only)", v.Name)
			}
		case v.ConfigMap != nil:
			if _, ok := o.configMaps[v.ConfigMap.Name]; !ok {
				t.Errorf("volume %s: no ConfigMap %s in the manifests", v.Name, v.ConfigMap.Name)
			}
			for _, it := range v.ConfigMap.Items {
				if err := o.configMapHas(v.ConfigMap.Name, it.Key); err != nil {
					t.Errorf("volume %s: %v", v.Name, err)
				}
			}
		}
	}
}

func (o objects) secretHas(name, key string) error {
	s, ok := o.secrets[name]
	if !ok {
		return fmt.Errorf("no Secret %s in secret.example.yaml", name)
	}
	if _, ok := s.StringData[key]; !ok {
		return fmt.Errorf("Secret %s has no key %s", name, key)
	}
	return nil
}

func (o objects) configMapHas(name, key string) error {
	cm, ok := o.configMaps[name]
	if !ok {
		return fmt.Errorf("no ConfigMap %s in the manifests", name)
	}
	if _, ok := cm.Data[key]; !ok {
		return fmt.Errorf("ConfigMap %s has no key %s", name, key)
	}
	return nil
}

// mountedFile tells which Secret or ConfigMap key the container sees at
// file, an absolute path.
func mountedFile(pod corev1.PodSpec, c corev1.Container, file string) (kind, name, key string, err error) {
	for _, m := range c.VolumeMounts {
		var rel string
		switch {
		case m.SubPath != "" && file == m.MountPath:
			rel = m.SubPath
		case m.SubPath == "" && strings.HasPrefix(file, m.MountPath+"/"):
			rel = strings.TrimPrefix(file, m.MountPath+"/")
		default:
			continue
		}
		v := findVolume(pod, m.Name)
		if v == nil {
			return "", "", "", fmt.Errorf("%s: mount %s has no volume", file, m.Name)
		}
		var items []corev1.KeyToPath
		switch {
		case v.Secret != nil:
			kind, name, items = "Secret", v.Secret.SecretName, v.Secret.Items
		case v.ConfigMap != nil:
			kind, name, items = "ConfigMap", v.ConfigMap.Name, v.ConfigMap.Items
		default:
			return "", "", "", fmt.Errorf("%s: volume %s is neither a Secret nor a ConfigMap", file, v.Name)
		}
		if len(items) == 0 {
			if strings.Contains(rel, "/") {
				return "", "", "", fmt.Errorf("%s: %s %s projects its keys flat, not %q", file, kind, name, rel)
			}
			return kind, name, rel, nil
		}
		for _, it := range items {
			if path.Clean(it.Path) == rel {
				return kind, name, it.Key, nil
			}
		}
		return "", "", "", fmt.Errorf("%s: %s %s projects no item at %s", file, kind, name, rel)
	}
	return "", "", "", fmt.Errorf("%s: no volume is mounted there", file)
}

func TestCronJob(t *testing.T) {
	o := loadObjects(t)
	cj, ok := o.cronJobs["klaviyo-etl"]
	if !ok {
		t.Fatal("no CronJob klaviyo-etl")
	}
	s := cj.Spec
	if s.ConcurrencyPolicy != batchv1.ForbidConcurrent {
		t.Errorf("concurrencyPolicy %q, want Forbid: two runs on one target only meet at its lock", s.ConcurrencyPolicy)
	}
	if s.StartingDeadlineSeconds == nil || *s.StartingDeadlineSeconds <= 0 {
		t.Error("startingDeadlineSeconds is not set")
	}
	if f := strings.Fields(s.Schedule); len(f) != 5 {
		t.Errorf("schedule %q: want 5 cron fields", s.Schedule)
	}
	if s.TimeZone != nil {
		if _, err := time.LoadLocation(*s.TimeZone); err != nil {
			t.Errorf("timeZone: %v", err)
		}
	}
	js := s.JobTemplate.Spec
	if js.BackoffLimit == nil {
		t.Error("backoffLimit is not set")
	}
	if js.CompletionMode != nil && *js.CompletionMode != batchv1.NonIndexedCompletion {
		t.Error("the CronJob runs one account: completionMode must be NonIndexed")
	}
	pod := js.Template.Spec
	c := pod.Containers[0]
	inv, err := parseArgs(c.Args)
	if err != nil {
		t.Fatal(err)
	}
	if inv.flags["sink"] != "postgres" {
		t.Errorf("--sink %q, want postgres", inv.flags["sink"])
	}
	keyFile := inv.flags["api-key-file"]
	if keyFile != "/var/run/secrets/klaviyo/api-key" {
		t.Errorf("--api-key-file %q, want /var/run/secrets/klaviyo/api-key", keyFile)
	}
	kind, name, key, err := mountedFile(pod, c, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if kind != "Secret" {
		t.Fatalf("--api-key-file %s comes from a %s, want a Secret", keyFile, kind)
	}
	if err := o.secretHas(name, key); err != nil {
		t.Errorf("--api-key-file %s: %v", keyFile, err)
	}
}

func TestIndexedJob(t *testing.T) {
	o := loadObjects(t)
	job, ok := o.jobs["klaviyo-etl-accounts"]
	if !ok {
		t.Fatal("no Job klaviyo-etl-accounts")
	}
	js := job.Spec
	if js.CompletionMode == nil || *js.CompletionMode != batchv1.IndexedCompletion {
		t.Fatal("completionMode is not Indexed: pods would get no JOB_COMPLETION_INDEX")
	}
	if js.Completions == nil || js.Parallelism == nil {
		t.Fatal("completions and parallelism must be set")
	}
	if p := *js.Parallelism; p < 1 || p > *js.Completions {
		t.Errorf("parallelism %d: want 1..completions (%d)", p, *js.Completions)
	}
	if js.BackoffLimitPerIndex == nil {
		t.Error("backoffLimitPerIndex is not set: one account's failures would use up the others' retries")
	}
	if js.TTLSecondsAfterFinished == nil {
		t.Error("ttlSecondsAfterFinished is not set: finished Jobs would pile up")
	}
	pod := js.Template.Spec
	c := pod.Containers[0]
	inv, err := parseArgs(c.Args)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"api-key-file", "pg-schema", "out", "budget-share", "base-url", "revision"} {
		if _, ok := inv.flags[f]; ok {
			t.Errorf("--%s: the accounts file sets it per account", f)
		}
	}
	file := inv.flags["accounts-file"]
	if file == "" {
		t.Fatal("no --accounts-file")
	}
	kind, name, key, err := mountedFile(pod, c, file)
	if err != nil {
		t.Fatal(err)
	}
	if kind != "ConfigMap" {
		t.Fatalf("--accounts-file %s comes from a %s, want a ConfigMap", file, kind)
	}
	if err := o.configMapHas(name, key); err != nil {
		t.Fatal(err)
	}
	// Load the file with the binary's own rules.
	tmp := filepath.Join(t.TempDir(), path.Base(file))
	if err := os.WriteFile(tmp, []byte(o.configMaps[name].Data[key]), 0o600); err != nil {
		t.Fatal(err)
	}
	af, err := accounts.Load(tmp)
	if err != nil {
		t.Fatalf("ConfigMap %s key %s: %v", name, key, err)
	}
	n := int(*js.Completions)
	if n != len(af.Accounts) {
		t.Errorf("completions %d, but accounts.yaml has %d accounts: every index must pick one", n, len(af.Accounts))
	}
	for i := 0; i < n; i++ {
		a, err := af.Pick(i)
		if err != nil {
			t.Errorf("index %d: %v", i, err)
			continue
		}
		if inv.flags["sink"] == "postgres" && a.PGSchema == "" {
			t.Errorf("account %s: --sink postgres but no pg_schema", a.Name)
		}
		if inv.flags["sink"] == "parquet" && a.Out == "" {
			t.Errorf("account %s: --sink parquet but no out", a.Name)
		}
		kind, sname, skey, err := mountedFile(pod, c, a.APIKeyFile)
		if err != nil {
			t.Errorf("account %s: api_key_file: %v", a.Name, err)
			continue
		}
		if kind != "Secret" {
			t.Errorf("account %s: api_key_file comes from a %s, want a Secret", a.Name, kind)
		}
		if err := o.secretHas(sname, skey); err != nil {
			t.Errorf("account %s: api_key_file %s: %v", a.Name, a.APIKeyFile, err)
		}
	}
	if _, err := af.Pick(n); err == nil {
		t.Errorf("Pick(%d) succeeded past the last completion index", n)
	}
}
