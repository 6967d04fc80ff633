// Package kubernetes holds no code, only tests of the manifests beside
// them: kustomize (its Go library, the code of kubectl kustomize) builds
// the base and the HTTPS overlay, every object is decoded strictly into
// its Kubernetes API type (an unknown or misspelt field fails), and the
// probes, ports, arguments, environment and configuration are checked
// against relay's own: its HTTP routes, its configuration loader, its
// command line.
//
// This is a Go module of its own so that the Kubernetes API types, the
// Prometheus Operator's and kustomize stay out of relay's module and
// binary. deploy/local/test.sh runs it after relay's tests.
package kubernetes_test

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	kusttypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/skype-relay/relay/relay/config"
	"github.com/skype-relay/relay/relay/ingest"
)

// objects is one kustomize build, decoded.
type objects struct {
	serviceAccount *corev1.ServiceAccount
	deployment     *appsv1.Deployment
	service        *corev1.Service
	pdb            *policyv1.PodDisruptionBudget
	serviceMonitor *monitoringv1.ServiceMonitor
	configMaps     map[string]*corev1.ConfigMap
}

// build runs kustomize on dir and decodes every object strictly.
func build(t *testing.T, dir string) *objects {
	t.Helper()
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	out := &objects{configMaps: map[string]*corev1.ConfigMap{}}
	for _, r := range m.Resources() {
		b, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		id := dir + ": " + r.GetKind() + " " + r.GetName()
		switch r.GetKind() {
		case "ServiceAccount":
			out.serviceAccount = decode[corev1.ServiceAccount](t, id, b)
		case "Deployment":
			out.deployment = decode[appsv1.Deployment](t, id, b)
		case "Service":
			out.service = decode[corev1.Service](t, id, b)
		case "PodDisruptionBudget":
			out.pdb = decode[policyv1.PodDisruptionBudget](t, id, b)
		case "ServiceMonitor":
			out.serviceMonitor = decode[monitoringv1.ServiceMonitor](t, id, b)
		case "ConfigMap":
			out.configMaps[r.GetName()] = decode[corev1.ConfigMap](t, id, b)
		default:
			t.Errorf("%s: no check knows this kind", id)
		}
	}
	if out.serviceAccount == nil || out.deployment == nil || out.service == nil || out.pdb == nil || out.serviceMonitor == nil {
		t.Fatalf("%s: want a ServiceAccount, Deployment, Service, PodDisruptionBudget and ServiceMonitor, got %+v", dir, out)
	}
	return out
}

// decode unmarshals b into a T, refusing unknown fields.
func decode[T any](t *testing.T, what string, b []byte) *T {
	t.Helper()
	v := new(T)
	if err := yaml.UnmarshalStrict(b, v); err != nil {
		t.Errorf("%s: %v", what, err)
	}
	return v
}

func TestBase(t *testing.T) {
	o := build(t, "base")
	d := o.deployment
	pod := d.Spec.Template.Spec
	c := container(t, d)

	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("replicas %v, want 2", d.Spec.Replicas)
	}
	if sc := pod.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser == 0 {
		t.Errorf("pod securityContext %+v: want runAsNonRoot and a non-zero runAsUser", sc)
	}
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		t.Errorf("container securityContext %+v: want a read-only root filesystem, no privilege escalation, every capability dropped", sc)
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources %+v: want cpu and memory requests and a memory limit", c.Resources)
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken ||
		o.serviceAccount.AutomountServiceAccountToken == nil || *o.serviceAccount.AutomountServiceAccountToken {
		t.Errorf("a service account token is mounted; relay uses no Kubernetes API")
	}
	if pod.ServiceAccountName != o.serviceAccount.Name {
		t.Errorf("serviceAccountName %q, want %q", pod.ServiceAccountName, o.serviceAccount.Name)
	}

	// Probes: relay's own endpoints, on the named port.
	port := containerPort(t, c, "http")
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{
		{"startupProbe", c.StartupProbe, "/-/healthy"},
		{"livenessProbe", c.LivenessProbe, "/-/healthy"},
		{"readinessProbe", c.ReadinessProbe, "/-/ready"},
	} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("%s: want an httpGet probe", p.name)
			continue
		}
		if p.probe.HTTPGet.Path != p.path || p.probe.HTTPGet.Port.String() != "http" {
			t.Errorf("%s: GET %s on port %s, want %s on port http", p.name, p.probe.HTTPGet.Path, p.probe.HTTPGet.Port.String(), p.path)
		}
		checkRoute(t, p.name, p.probe.HTTPGet.Path)
		if p.probe.HTTPGet.Scheme != "" && p.probe.HTTPGet.Scheme != corev1.URISchemeHTTP {
			t.Errorf("%s: scheme %s in the base, want HTTP", p.name, p.probe.HTTPGet.Scheme)
		}
	}

	cfg := checkConfig(t, o, c)
	_, listenPort, err := net.SplitHostPort(cfg.ListenAddress)
	if err != nil {
		t.Fatal(err)
	}
	if listenPort != fmt.Sprint(port) {
		t.Errorf("listen_address %s, but the container port is %d", cfg.ListenAddress, port)
	}
	if host, _, _ := net.SplitHostPort(cfg.ListenAddress); host != "0.0.0.0" && host != "" && host != "::" {
		t.Errorf("listen_address %s: the kubelet and the Service cannot reach a loopback address", cfg.ListenAddress)
	}
	checkFlags(t, c.Args)

	// Service, PodDisruptionBudget and ServiceMonitor find the pods.
	labels := d.Spec.Template.Labels
	if !selects(o.service.Spec.Selector, labels) || !selects(d.Spec.Selector.MatchLabels, labels) ||
		!selects(o.pdb.Spec.Selector.MatchLabels, labels) {
		t.Errorf("a selector misses the pod labels %v: service %v, deployment %v, pdb %v",
			labels, o.service.Spec.Selector, d.Spec.Selector.MatchLabels, o.pdb.Spec.Selector.MatchLabels)
	}
	if o.pdb.Spec.MinAvailable == nil || o.pdb.Spec.MinAvailable.IntValue() < 1 || o.pdb.Spec.MinAvailable.IntValue() >= int(*d.Spec.Replicas) {
		t.Errorf("PodDisruptionBudget minAvailable %v with %d replicas: want at least 1 and fewer than the replicas", o.pdb.Spec.MinAvailable, *d.Spec.Replicas)
	}
	if len(o.service.Spec.Ports) != 1 || o.service.Spec.Ports[0].TargetPort.String() != "http" {
		t.Fatalf("service ports %+v: want one, to the container port named http", o.service.Spec.Ports)
	}
	if !selects(o.serviceMonitor.Spec.Selector.MatchLabels, o.service.Labels) {
		t.Errorf("ServiceMonitor selector %v misses the Service labels %v", o.serviceMonitor.Spec.Selector.MatchLabels, o.service.Labels)
	}
	ep := o.serviceMonitor.Spec.Endpoints
	if len(ep) != 1 || ep[0].Port != o.service.Spec.Ports[0].Name {
		t.Fatalf("ServiceMonitor endpoints %+v: want one, on the Service port %q", ep, o.service.Spec.Ports[0].Name)
	}
	checkRoute(t, "ServiceMonitor", ep[0].Path)

	// The database: CloudNativePG's application Secret of the example
	// Cluster, key uri, named by DATABASE_URL_FILE.
	cluster := readCluster(t)
	file := envValue(t, c, config.EnvDatabaseURLFile)
	v := volumeAt(t, d, c, file)
	if v.Secret == nil || v.Secret.SecretName != cluster.Metadata.Name+"-app" || len(v.Secret.Items) != 1 ||
		path.Join(mountOf(c, v.Name), v.Secret.Items[0].Path) != file || v.Secret.Items[0].Key != "uri" {
		t.Errorf("DATABASE_URL_FILE %s: want the key uri of the Secret %s-app (CloudNativePG's), got volume %+v", file, cluster.Metadata.Name, v)
	}
}

func TestHTTPSOverlay(t *testing.T) {
	o := build(t, "overlays/https")
	d := o.deployment
	c := container(t, d)
	checkFlags(t, c.Args)
	i := slices.Index(c.Args, "--web.config.file")
	if i < 0 || i+1 >= len(c.Args) {
		t.Fatalf("args %q: want --web.config.file FILE", c.Args)
	}
	webFile := c.Args[i+1]
	v := volumeAt(t, d, c, webFile)
	if v.ConfigMap == nil {
		t.Fatalf("%s is not in a ConfigMap volume: %+v", webFile, v)
	}
	cm := o.configMaps[v.ConfigMap.Name]
	if cm == nil || cm.Data[path.Base(webFile)] == "" {
		t.Fatalf("ConfigMap %q has no key %s", v.ConfigMap.Name, path.Base(webFile))
	}
	// The web configuration file's keys, decoded as relay and the exporter
	// toolkit decode them.
	var web struct {
		TLS struct {
			CertFile string `json:"cert_file"`
			KeyFile  string `json:"key_file"`
		} `json:"tls_server_config"`
	}
	if err := yaml.UnmarshalStrict([]byte(cm.Data[path.Base(webFile)]), &web); err != nil {
		t.Errorf("%s: %v", webFile, err)
	}
	for _, f := range []string{web.TLS.CertFile, web.TLS.KeyFile} {
		if v := volumeAt(t, d, c, f); v.Secret == nil {
			t.Errorf("%s is not in a Secret volume", f)
		}
	}
	for name, p := range map[string]*corev1.Probe{"startupProbe": c.StartupProbe, "livenessProbe": c.LivenessProbe, "readinessProbe": c.ReadinessProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Scheme != corev1.URISchemeHTTPS {
			t.Errorf("%s: want an HTTPS probe with TLS on", name)
		}
	}
	ep := o.serviceMonitor.Spec.Endpoints
	if len(ep) != 1 || ep[0].Scheme == nil || strings.ToLower(ep[0].Scheme.String()) != "https" || ep[0].TLSConfig == nil {
		t.Errorf("ServiceMonitor endpoints %+v: want https with a tlsConfig", ep)
	}
	if d.Namespace != "relay" {
		t.Errorf("namespace %q, want relay", d.Namespace)
	}
}

// TestEveryManifestDecodes decodes each file on its own too: kustomization
// files into kustomize's type, the Cluster into the fields relay's example
// uses, the rest into the Kubernetes type of its kind.
func TestEveryManifestDecodes(t *testing.T) {
	n := 0
	err := filepath.WalkDir(".", func(p string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() || (filepath.Ext(p) != ".yaml" && filepath.Ext(p) != ".yml") {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		n++
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		_ = yaml.Unmarshal(b, &head)
		switch {
		case filepath.Base(p) == "kustomization.yaml":
			decode[kusttypes.Kustomization](t, p, b)
		case p == "base/relay.yaml", p == "components/tls/web.yml":
			// Checked through the build, against relay's loader.
		case strings.HasSuffix(p, "-patch.yaml") && head.Kind == "":
			var ops []struct {
				Op    string `json:"op"`
				Path  string `json:"path"`
				Value any    `json:"value"`
			}
			if err := yaml.UnmarshalStrict(b, &ops); err != nil || len(ops) == 0 {
				t.Errorf("%s: want a JSON patch (%v)", p, err)
			}
		case head.Kind == "Deployment":
			decode[appsv1.Deployment](t, p, b)
		case head.Kind == "Service":
			decode[corev1.Service](t, p, b)
		case head.Kind == "ServiceAccount":
			decode[corev1.ServiceAccount](t, p, b)
		case head.Kind == "PodDisruptionBudget":
			decode[policyv1.PodDisruptionBudget](t, p, b)
		case head.Kind == "ServiceMonitor":
			decode[monitoringv1.ServiceMonitor](t, p, b)
		case head.Kind == "Cluster":
			readCluster(t)
		default:
			t.Errorf("%s: no check knows kind %q", p, head.Kind)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 14 {
		t.Errorf("decoded %d files, want every manifest (at least 14)", n)
	}
}

// cnpgCluster holds the fields of CloudNativePG's Cluster (postgresql.cnpg.io/v1)
// that the example sets, as the operator's API reference names them; its
// Go API module is not among relay's dependencies, so strict decoding here
// catches a misspelt or misplaced key of these.
type cnpgCluster struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            struct {
		Instances  int `json:"instances"`
		PostgreSQL struct {
			Synchronous struct {
				Method         string `json:"method"`
				Number         int    `json:"number"`
				DataDurability string `json:"dataDurability"`
			} `json:"synchronous"`
		} `json:"postgresql"`
		Bootstrap struct {
			InitDB struct {
				Database string `json:"database"`
				Owner    string `json:"owner"`
			} `json:"initdb"`
		} `json:"bootstrap"`
		Storage struct {
			Size string `json:"size"`
		} `json:"storage"`
		Affinity struct {
			EnablePodAntiAffinity bool   `json:"enablePodAntiAffinity"`
			TopologyKey           string `json:"topologyKey"`
		} `json:"affinity"`
	} `json:"spec"`
}

func readCluster(t *testing.T) *cnpgCluster {
	t.Helper()
	const file = "cloudnative-pg/cluster.yaml"
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	c := decode[cnpgCluster](t, file, b)
	s := c.Spec
	if c.APIVersion != "postgresql.cnpg.io/v1" || c.Kind != "Cluster" {
		t.Errorf("%s: %s %s, want postgresql.cnpg.io/v1 Cluster", file, c.APIVersion, c.Kind)
	}
	// Zero loss on failover: a standby in sync, always.
	if s.Instances < 2 || s.PostgreSQL.Synchronous.Number < 1 || s.PostgreSQL.Synchronous.Number >= s.Instances ||
		s.PostgreSQL.Synchronous.DataDurability != "required" || !slices.Contains([]string{"any", "first"}, s.PostgreSQL.Synchronous.Method) {
		t.Errorf("%s: %d instances, synchronous %+v: want synchronous replication to at least one standby, dataDurability required",
			file, s.Instances, s.PostgreSQL.Synchronous)
	}
	return c
}

func container(t *testing.T, d *appsv1.Deployment) *corev1.Container {
	t.Helper()
	cs := d.Spec.Template.Spec.Containers
	if len(cs) != 1 || cs[0].Name != "relay" {
		t.Fatalf("containers %+v: want one, named relay", cs)
	}
	return &cs[0]
}

func containerPort(t *testing.T, c *corev1.Container, name string) int32 {
	t.Helper()
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	t.Fatalf("no container port named %s in %+v", name, c.Ports)
	return 0
}

// checkConfig loads the ConfigMap's relay.yaml with relay's own loader (so
// an unknown or invalid key fails) and checks that every secret file it or
// the environment names is in a mounted Secret.
func checkConfig(t *testing.T, o *objects, c *corev1.Container) *config.Config {
	t.Helper()
	d := o.deployment
	i := slices.Index(c.Args, "--config")
	if len(c.Args) == 0 || c.Args[0] != "serve" || i < 0 || i+1 >= len(c.Args) {
		t.Fatalf("args %q: want serve --config FILE", c.Args)
	}
	file := c.Args[i+1]
	v := volumeAt(t, d, c, file)
	if v.ConfigMap == nil || o.configMaps[v.ConfigMap.Name] == nil {
		t.Fatalf("%s is not in a ConfigMap of the build: %+v", file, v)
	}
	data := o.configMaps[v.ConfigMap.Name].Data[path.Base(file)]

	// Each variable the container sets is one relay (or Go) reads; a
	// *_FILE variable names a file of a mounted Secret. The loader then
	// gets the secret values themselves.
	env := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.Name == "GOMEMLIMIT" || e.Name == "GOGC":
		case e.Name == config.EnvDatabaseURLFile:
			if v := volumeAt(t, d, c, e.Value); v.Secret == nil {
				t.Errorf("%s=%s is not in a Secret volume", e.Name, e.Value)
			}
			env[config.EnvDatabaseURL] = "postgres://relay:secret@relay-db-rw:5432/relay"
		case e.Name == config.EnvListenAddress:
			env[e.Name] = e.Value
		default:
			t.Errorf("env %s: not a variable relay reads here", e.Name)
		}
	}
	getenv := func(k string) string {
		if strings.HasPrefix(k, "RELAY_ROUTE_") && strings.HasSuffix(k, "_TOKEN") || k == config.EnvAPIToken || k == config.EnvUCWAPassword {
			return "secret-from-a-mounted-file"
		}
		return env[k]
	}
	cfg, err := config.Parse([]byte(data), "/etc/relay", getenv)
	if err != nil {
		t.Fatalf("relay rejects %s: %v", file, err)
	}
	files := []string{cfg.API.BearerTokenFile, cfg.UCWA.PasswordFile}
	for _, r := range cfg.Routes {
		files = append(files, r.BearerTokenFile, r.SecretFile)
	}
	for _, f := range files {
		if f == "" {
			continue
		}
		if v := volumeAt(t, d, c, f); v.Secret == nil {
			t.Errorf("secret file %s is not in a Secret volume", f)
		}
	}
	if cfg.DatabaseURL() == "" {
		t.Errorf("no database URL reaches relay")
	}
	return cfg
}

// volumeAt returns the volume mounted where file is.
func volumeAt(t *testing.T, d *appsv1.Deployment, c *corev1.Container, file string) *corev1.Volume {
	t.Helper()
	var best *corev1.VolumeMount
	for i, m := range c.VolumeMounts {
		if strings.HasPrefix(file, m.MountPath+"/") && (best == nil || len(m.MountPath) > len(best.MountPath)) {
			best = &c.VolumeMounts[i]
		}
	}
	if best == nil {
		t.Fatalf("%s is on no volume mount of %+v", file, c.VolumeMounts)
	}
	for i, v := range d.Spec.Template.Spec.Volumes {
		if v.Name == best.Name {
			return &d.Spec.Template.Spec.Volumes[i]
		}
	}
	t.Fatalf("volume %s (mounted at %s) is not defined", best.Name, best.MountPath)
	return nil
}

func mountOf(c *corev1.Container, volume string) string {
	for _, m := range c.VolumeMounts {
		if m.Name == volume {
			return m.MountPath
		}
	}
	return ""
}

func envValue(t *testing.T, c *corev1.Container, name string) string {
	t.Helper()
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	t.Fatalf("the container does not set %s", name)
	return ""
}

func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// relayRoutes are the GET routes relay's HTTP handler serves.
var relayRoutes = sync.OnceValue(func() map[string]bool {
	h := ingest.New(&ingest.Config{}, ingest.Options{Registerer: prometheus.NewRegistry()})
	out := map[string]bool{}
	for _, r := range h.Echo().Routes() {
		if r.Method == http.MethodGet {
			out[r.Path] = true
		}
	}
	return out
})

func checkRoute(t *testing.T, what, p string) {
	t.Helper()
	if !relayRoutes()[p] {
		t.Errorf("%s: relay serves no GET %s", what, p)
	}
}

var relayBin = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "relay-k8s-test-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "relay")
	// Built in relay's own module, as a release is.
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/relay")
	cmd.Dir = "../.."
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// checkFlags asks the relay command for the help of the subcommand in args
// and checks that it knows every flag args use.
func checkFlags(t *testing.T, args []string) {
	t.Helper()
	bin, err := relayBin()
	if err != nil {
		t.Fatal(err)
	}
	var help bytes.Buffer
	cmd := exec.Command(bin, args[0], "-h")
	cmd.Stdout, cmd.Stderr = &help, &help
	_ = cmd.Run() // -h exits 0 or 2 depending on the parser; the text is what counts
	for _, a := range args[1:] {
		name, ok := strings.CutPrefix(a, "--")
		if !ok {
			continue
		}
		name, _, _ = strings.Cut(name, "=")
		if !strings.Contains(help.String(), "-"+name) {
			t.Errorf("relay %s does not know --%s:\n%s", args[0], name, help.String())
		}
	}
}
