package charts

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	kubefake "helm.sh/helm/v3/pkg/kube/fake"
	"helm.sh/helm/v3/pkg/storage"
	"helm.sh/helm/v3/pkg/storage/driver"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"
)

const chartDir = "aurora"

// valueSets are the value files CI renders: the defaults and each file in
// aurora/ci (Helm's convention for CI values).
func valueSets(t *testing.T) map[string]map[string]any {
	t.Helper()
	sets := map[string]map[string]any{"defaults": {}}
	files, err := filepath.Glob(filepath.Join(chartDir, "ci", "*-values.yaml"))
	if err != nil || len(files) < 2 {
		t.Fatalf("want value files in %s/ci, got %v (%v)", chartDir, files, err)
	}
	for _, f := range files {
		vals, err := chartutil.ReadValuesFile(f)
		if err != nil {
			t.Fatalf("read %s: %v", f, err)
		}
		sets[strings.TrimSuffix(filepath.Base(f), "-values.yaml")] = vals.AsMap()
	}
	return sets
}

// render is `helm template` without a cluster.
func render(t *testing.T, vals map[string]any) (string, error) {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatalf("load chart: %v", err)
	}
	cfg := &action.Configuration{
		Releases:     storage.Init(driver.NewMemory()),
		KubeClient:   &kubefake.PrintingKubeClient{Out: io.Discard},
		Capabilities: chartutil.DefaultCapabilities,
		Log:          func(string, ...any) {},
	}
	install := action.NewInstall(cfg)
	install.DryRun = true
	install.ClientOnly = true
	install.Replace = true
	install.ReleaseName = "aurora"
	install.Namespace = "chat"
	install.KubeVersion = &chartutil.KubeVersion{Version: "v1.31.0", Major: "1", Minor: "31"}
	rel, err := install.Run(ch, vals)
	if err != nil {
		return "", err
	}
	return rel.Manifest, nil
}

// object is a rendered manifest decoded strictly into its API type.
type object struct {
	kind, name string
	obj        any
}

// decodeStrict checks each document against the Kubernetes API types: an
// unknown field, a wrong type or an unknown kind fails. This is the offline
// schema check (no cluster, no network).
func decodeStrict(t *testing.T, manifest string) []object {
	t.Helper()
	var out []object
	for _, doc := range strings.Split(manifest, "\n---") {
		doc = strings.TrimSpace(doc)
		if doc == "" || strings.Trim(doc, "- \n") == "" {
			continue
		}
		var meta struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			t.Fatalf("not YAML: %v\n%s", err, doc)
		}
		var obj any
		switch meta.APIVersion + "/" + meta.Kind {
		case "apps/v1/Deployment":
			obj = &appsv1.Deployment{}
		case "apps/v1/StatefulSet":
			obj = &appsv1.StatefulSet{}
		case "v1/Service":
			obj = &corev1.Service{}
		case "v1/ConfigMap":
			obj = &corev1.ConfigMap{}
		case "v1/Secret":
			obj = &corev1.Secret{}
		case "v1/PersistentVolumeClaim":
			obj = &corev1.PersistentVolumeClaim{}
		case "autoscaling/v2/HorizontalPodAutoscaler":
			obj = &autoscalingv2.HorizontalPodAutoscaler{}
		case "policy/v1/PodDisruptionBudget":
			obj = &policyv1.PodDisruptionBudget{}
		case "networking.k8s.io/v1/Ingress":
			obj = &networkingv1.Ingress{}
		case "monitoring.coreos.com/v1/ServiceMonitor":
			// A CRD: no Go type here; check the fields the operator needs.
			var sm struct {
				Spec struct {
					Selector  map[string]any   `json:"selector"`
					Endpoints []map[string]any `json:"endpoints"`
				} `json:"spec"`
			}
			if err := yaml.Unmarshal([]byte(doc), &sm); err != nil || sm.Spec.Selector == nil || len(sm.Spec.Endpoints) == 0 {
				t.Errorf("ServiceMonitor %s: needs spec.selector and spec.endpoints (%v)", meta.Metadata.Name, err)
			}
			out = append(out, object{meta.Kind, meta.Metadata.Name, sm})
			continue
		default:
			t.Errorf("unexpected kind %s/%s (%s): add it to the schema check", meta.APIVersion, meta.Kind, meta.Metadata.Name)
			continue
		}
		if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
			t.Errorf("%s %s does not match the Kubernetes API: %v", meta.Kind, meta.Metadata.Name, err)
			continue
		}
		out = append(out, object{meta.Kind, meta.Metadata.Name, obj})
	}
	return out
}

func TestLint(t *testing.T) {
	for name, vals := range valueSets(t) {
		t.Run(name, func(t *testing.T) {
			lint := action.NewLint()
			lint.Strict = true
			lint.Namespace = "chat"
			res := lint.Run([]string{chartDir}, vals)
			for _, m := range res.Messages {
				// INFO (e.g. "icon is recommended") is advice, not a defect.
				if m.Severity > 1 {
					t.Errorf("lint: %s", m)
				}
			}
			for _, err := range res.Errors {
				t.Errorf("lint error: %v", err)
			}
		})
	}
}

func TestRenderedObjects(t *testing.T) {
	for name, vals := range valueSets(t) {
		t.Run(name, func(t *testing.T) {
			manifest, err := render(t, vals)
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			if os.Getenv("AURORA_CHART_DUMP") != "" {
				t.Log(manifest)
			}
			objs := decodeStrict(t, manifest)
			allInOne := name == "allinone"
			checkDeployments(t, objs, allInOne)
			checkNoSecretInConfigMap(t, objs, vals)
			if name == "external" {
				checkExternal(t, objs)
			}
		})
	}
}

func checkDeployments(t *testing.T, objs []object, allInOne bool) {
	t.Helper()
	want := map[string]string{"auth": "--roles=auth", "chat": "--roles=chat", "ingest": "--roles=ingest"}
	if allInOne {
		want = map[string]string{"all": "--roles=auth,chat,ingest"}
	}
	got := map[string]bool{}
	for _, o := range objs {
		d, ok := o.obj.(*appsv1.Deployment)
		if !ok {
			continue
		}
		comp := d.Spec.Template.Labels["app.kubernetes.io/component"]
		flag, expected := want[comp]
		if !expected {
			t.Errorf("unexpected Deployment %s (component %q)", d.Name, comp)
			continue
		}
		if got[comp] {
			t.Errorf("two Deployments for %s", comp)
		}
		got[comp] = true
		if len(d.Spec.Template.Spec.Containers) != 1 {
			t.Fatalf("%s: want 1 container", d.Name)
		}
		c := d.Spec.Template.Spec.Containers[0]
		if !contains(c.Args, flag) || !contains(c.Args, "serve") {
			t.Errorf("%s: args %v, want serve and %s", d.Name, c.Args, flag)
		}
		if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
			t.Errorf("%s: liveness probe must GET /healthz", d.Name)
		}
		if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
			t.Errorf("%s: readiness probe must GET /readyz", d.Name)
		}
		sc := c.SecurityContext
		if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
			sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
			sc.Capabilities == nil || !contains(capNames(sc.Capabilities.Drop), "ALL") {
			t.Errorf("%s: container must have a read-only root, no privilege escalation and drop ALL", d.Name)
		}
		psc := d.Spec.Template.Spec.SecurityContext
		if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
			t.Errorf("%s: pod must run as non-root", d.Name)
		}
		// The drain (25 s) and the readiness delay must fit in the grace period.
		if g := d.Spec.Template.Spec.TerminationGracePeriodSeconds; g == nil || *g <= 30 {
			t.Errorf("%s: terminationGracePeriodSeconds %v must exceed drain + shutdown delay", d.Name, g)
		}
		if c.Lifecycle == nil || c.Lifecycle.PreStop == nil {
			t.Errorf("%s: needs a preStop hook so the load balancer stops routing before the drain", d.Name)
		}
		for _, e := range c.Env {
			if e.Value != "" && (strings.Contains(e.Name, "SECRET") || strings.Contains(e.Name, "URL")) {
				t.Errorf("%s: env %s inlines a secret; it must come from a secretKeyRef", d.Name, e.Name)
			}
		}
	}
	for comp := range want {
		if !got[comp] {
			t.Errorf("no Deployment for %s", comp)
		}
	}
}

func checkNoSecretInConfigMap(t *testing.T, objs []object, vals map[string]any) {
	t.Helper()
	secretVals := []string{}
	for _, o := range objs {
		if s, ok := o.obj.(*corev1.Secret); ok {
			for _, v := range s.StringData {
				secretVals = append(secretVals, v)
			}
		}
	}
	if sec, ok := vals["secret"].(map[string]any); ok {
		if j, _ := sec["jwtSecret"].(string); j != "" {
			secretVals = append(secretVals, j)
		}
	}
	for _, o := range objs {
		cm, ok := o.obj.(*corev1.ConfigMap)
		if !ok {
			continue
		}
		for k, v := range cm.Data {
			for _, s := range secretVals {
				if s != "" && strings.Contains(v, s) {
					t.Errorf("ConfigMap %s key %s contains a secret value", cm.Name, k)
				}
			}
			for _, word := range []string{"jwt_secret", "password", "s3cret"} {
				if strings.Contains(strings.ToLower(v), word) {
					t.Errorf("ConfigMap %s key %s mentions %q", cm.Name, k, word)
				}
			}
		}
	}
}

func checkExternal(t *testing.T, objs []object) {
	t.Helper()
	kinds := map[string]int{}
	for _, o := range objs {
		kinds[o.kind]++
		switch v := o.obj.(type) {
		case *networkingv1.Ingress:
			paths := map[string]string{}
			for _, r := range v.Spec.Rules {
				for _, p := range r.HTTP.Paths {
					paths[p.Path] = p.Backend.Service.Name
				}
			}
			for path, svc := range map[string]string{"/api/auth": "aurora-auth", "/ws": "aurora-chat", "/api/rooms": "aurora-chat", "/": "aurora-chat"} {
				if paths[path] != svc {
					t.Errorf("ingress routes %s to %q, want %s", path, paths[path], svc)
				}
			}
			if len(v.Spec.TLS) == 0 {
				t.Error("ingress: TLS enabled in values but not rendered")
			}
		case *autoscalingv2.HorizontalPodAutoscaler:
			if v.Name == "aurora-chat" && len(v.Spec.Metrics) < 2 {
				t.Errorf("chat HPA: want CPU plus the custom metric, got %d metrics", len(v.Spec.Metrics))
			}
		}
	}
	// The S3 keys of attachments: in the Secret, and from it in the
	// environment of every Aurora container (ingest deletes objects too).
	for _, o := range objs {
		switch v := o.obj.(type) {
		case *corev1.Secret:
			if v.StringData["s3-access-key"] != "AKIAAURORAFILES" || v.StringData["s3-secret-key"] == "" {
				t.Errorf("Secret %s: s3-access-key %q, s3-secret-key set %v", v.Name, v.StringData["s3-access-key"], v.StringData["s3-secret-key"] != "")
			}
		case *appsv1.Deployment:
			for _, c := range v.Spec.Template.Spec.Containers {
				if c.Name != "aurora" {
					continue
				}
				found := map[string]bool{}
				for _, e := range c.Env {
					if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
						found[e.Name+"="+e.ValueFrom.SecretKeyRef.Key] = true
					}
				}
				if !found["AURORA_ATTACHMENTS_S3_ACCESS_KEY=s3-access-key"] || !found["AURORA_ATTACHMENTS_S3_SECRET_KEY=s3-secret-key"] {
					t.Errorf("Deployment %s: the S3 keys are not taken from the Secret: %v", v.Name, found)
				}
			}
		}
	}
	for kind, n := range map[string]int{"HorizontalPodAutoscaler": 2, "PodDisruptionBudget": 3, "Ingress": 1, "ServiceMonitor": 1, "Service": 3} {
		if kinds[kind] != n {
			t.Errorf("want %d %s, got %d", n, kind, kinds[kind])
		}
	}
}

// TestSchemaRejectsBadValues: values.schema.json makes wrong values fail at install.
func TestSchemaRejectsBadValues(t *testing.T) {
	bad := map[string]map[string]any{
		"unknown top-level key": {"replicaCount": 3},
		"negative replicas":     {"roles": map[string]any{"chat": map[string]any{"replicas": -1}}},
		"bad redis url":         {"redis": map[string]any{"url": "http://redis:6379"}},
		"bad service type":      {"service": map[string]any{"type": "Magic"}},
		// Aurora refuses a secret under 32 bytes at start: fail at install.
		"short jwt secret": {"secret": map[string]any{"jwtSecret": "dev-secret"}},
	}
	for name, vals := range bad {
		t.Run(name, func(t *testing.T) {
			if _, err := render(t, vals); err == nil {
				t.Fatalf("values %v rendered; the schema should reject them", vals)
			}
		})
	}
	// The secret rule refuses short secrets only.
	if _, err := render(t, map[string]any{"secret": map[string]any{"jwtSecret": "dev-secret"}}); err == nil || !strings.Contains(err.Error(), "jwtSecret") {
		t.Errorf("short jwtSecret: %v, want a schema error naming jwtSecret", err)
	}
	for _, ok := range []string{"", strings.Repeat("k", 32)} {
		if _, err := render(t, map[string]any{"secret": map[string]any{"jwtSecret": ok}}); err != nil {
			t.Errorf("jwtSecret of %d characters refused: %v", len(ok), err)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func capNames(cs []corev1.Capability) []string {
	var out []string
	for _, c := range cs {
		out = append(out, string(c))
	}
	return out
}

// TestDashboard: the Grafana dashboard is valid JSON and every aurora_*
// series it queries is one docs/metrics.md documents, so a renamed metric
// cannot leave a silently empty panel.
func TestDashboard(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(chartDir, "dashboards", "aurora.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("dashboard is not JSON: %v", err)
	}
	docs, err := os.ReadFile(filepath.Join("..", "docs", "metrics.md"))
	if err != nil {
		t.Fatal(err)
	}
	series := regexp.MustCompile(`aurora_[a-z_]+`)
	n := 0
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			for _, name := range series.FindAllString(tg.Expr, -1) {
				n++
				base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_count"), "_sum")
				if !strings.Contains(string(docs), "`"+base+"`") {
					t.Errorf("panel %q queries %s, which docs/metrics.md does not document", p.Title, base)
				}
			}
		}
	}
	if n < 10 {
		t.Errorf("dashboard queries only %d aurora series", n)
	}
}
