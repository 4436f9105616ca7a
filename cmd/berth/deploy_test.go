package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// k8sObject is the part of a Kubernetes object the test reads.
type k8sObject struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name      string `yaml:"name"`
		Namespace string `yaml:"namespace"`
	} `yaml:"metadata"`
	Data       map[string]string `yaml:"data"`
	StringData map[string]string `yaml:"stringData"`
	Spec       struct {
		ClusterIP string `yaml:"clusterIP"`
		Template  struct {
			Spec podSpec `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type podSpec struct {
	HostNetwork    bool        `yaml:"hostNetwork"`
	InitContainers []container `yaml:"initContainers"`
	Containers     []container `yaml:"containers"`
	Volumes        []struct {
		Name      string `yaml:"name"`
		ConfigMap *struct {
			Name string `yaml:"name"`
		} `yaml:"configMap"`
		Secret *struct {
			SecretName string `yaml:"secretName"`
		} `yaml:"secret"`
	} `yaml:"volumes"`
}

type container struct {
	Name           string   `yaml:"name"`
	Args           []string `yaml:"args"`
	ReadinessProbe *struct {
		Exec struct {
			Command []string `yaml:"command"`
		} `yaml:"exec"`
	} `yaml:"readinessProbe"`
	Ports []struct {
		HostPort int `yaml:"hostPort"`
	} `yaml:"ports"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		SubPath   string `yaml:"subPath"`
	} `yaml:"volumeMounts"`
}

// readManifests parses every YAML document of deploy/kubernetes strictly
// enough to catch a broken indent: each must be an object with a kind.
func readManifests(t *testing.T) map[string]k8sObject {
	t.Helper()
	files, err := filepath.Glob("../../deploy/kubernetes/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in deploy/kubernetes: %v", err)
	}
	objs := map[string]k8sObject{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			var o k8sObject
			if err := dec.Decode(&o); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: not valid YAML: %v", f, err)
			}
			if o.APIVersion == "" || o.Kind == "" {
				t.Fatalf("%s: a document without apiVersion or kind", f)
			}
			if o.Kind != "Kustomization" && o.Metadata.Name == "" {
				t.Fatalf("%s: %s without a name", f, o.Kind)
			}
			objs[o.Kind+"/"+o.Metadata.Name] = o
		}
	}
	return objs
}

// TestKubernetesManifests parses deploy/kubernetes, checks what the
// DaemonSet promises (host network, readiness on /readyz, the init
// container writing hosts.toml, the ConfigMap and Secret mounted) and runs
// berth check-config on the ConfigMap's config with the Secret's value at
// the path the DaemonSet mounts it.
func TestKubernetesManifests(t *testing.T) {
	objs := readManifests(t)
	ds, ok := objs["DaemonSet/berth"]
	if !ok {
		t.Fatalf("no DaemonSet berth in %v", keys(objs))
	}
	if svc := objs["Service/berth-gossip"]; svc.Spec.ClusterIP != "None" {
		t.Errorf("Service berth-gossip: clusterIP %q, want None (headless)", svc.Spec.ClusterIP)
	}
	pod := ds.Spec.Template.Spec
	if len(pod.Containers) != 1 || len(pod.InitContainers) != 1 {
		t.Fatalf("DaemonSet: %d containers and %d init containers, want 1 and 1", len(pod.Containers), len(pod.InitContainers))
	}
	c := pod.Containers[0]
	if !pod.HostNetwork && (len(c.Ports) == 0 || c.Ports[0].HostPort == 0) {
		t.Error("DaemonSet: neither hostNetwork nor a hostPort")
	}
	if c.ReadinessProbe == nil || !strings.Contains(strings.Join(c.ReadinessProbe.Exec.Command, " "), "/readyz") {
		t.Errorf("DaemonSet: readiness probe %+v, want one on /readyz", c.ReadinessProbe)
	}
	if init := strings.Join(pod.InitContainers[0].Args, " "); !strings.HasPrefix(init, "prepare-node") || !strings.Contains(init, "--certs-d") {
		t.Errorf("init container args %q, want berth prepare-node --certs-d ...", init)
	}
	// Where the ConfigMap and the Secret are mounted.
	mounts := map[string]string{} // volume's source object -> mount path
	for _, v := range pod.Volumes {
		for _, m := range c.VolumeMounts {
			if m.Name != v.Name {
				continue
			}
			switch {
			case v.ConfigMap != nil:
				mounts["ConfigMap/"+v.ConfigMap.Name] = strings.TrimSuffix(m.MountPath, "/"+m.SubPath)
			case v.Secret != nil:
				mounts["Secret/"+v.Secret.SecretName] = m.MountPath
			}
		}
	}
	cm, sec := objs["ConfigMap/berth-config"], objs["Secret/berth-cluster"]
	if mounts["ConfigMap/berth-config"] != "/etc/berth" || mounts["Secret/berth-cluster"] == "" {
		t.Fatalf("DaemonSet mounts %v; want ConfigMap berth-config at /etc/berth and Secret berth-cluster", mounts)
	}
	if !strings.Contains(strings.Join(c.Args, " "), "--config /etc/berth/config.yaml") {
		t.Errorf("berth args %q do not read the ConfigMap's config", c.Args)
	}
	// The Secret's files where the DaemonSet mounts them, in a temp dir.
	dir := t.TempDir()
	secretDir := filepath.Join(dir, "secret")
	if err := os.Mkdir(secretDir, 0o700); err != nil {
		t.Fatal(err)
	}
	for k, v := range sec.StringData {
		if err := os.WriteFile(filepath.Join(secretDir, k), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := strings.ReplaceAll(cm.Data["config.yaml"], mounts["Secret/berth-cluster"]+"/", secretDir+"/")
	if !strings.Contains(cfg, secretDir) {
		t.Errorf("the config names no file under the Secret's mount %s", mounts["Secret/berth-cluster"])
	}
	checkConfig(t, filepath.Join(dir, "config.yaml"), cfg)
}

// TestContainerConfigs runs berth check-config on the config baked into
// the image and parses the compose file.
func TestContainerConfigs(t *testing.T) {
	b, err := os.ReadFile("../../deploy/docker/config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	checkConfig(t, filepath.Join(t.TempDir(), "config.yaml"), string(b))
	b, err = os.ReadFile("../../deploy/docker/compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Image   string   `yaml:"image"`
			Volumes []string `yaml:"volumes"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &compose); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	if s, ok := compose.Services["berth"]; !ok || s.Image == "" || len(s.Volumes) == 0 ||
		!strings.HasSuffix(s.Volumes[0], ":/var/lib/berth") {
		t.Errorf("compose.yaml: service berth %+v, want an image and a volume at /var/lib/berth", compose.Services)
	}
}

// checkConfig writes body to path and runs berth check-config on it.
func checkConfig(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"check-config", "--config", path}, &out); err != nil {
		t.Fatalf("berth check-config: %v\n%s", err, body)
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
