package clients

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// DockerdOptions configures StartDockerd.
type DockerdOptions struct {
	// Mirrors become daemon.json "registry-mirrors" (e.g. "http://127.0.0.1:PORT").
	Mirrors []string
	// InsecureRegistries become daemon.json "insecure-registries"
	// (127.0.0.0/8 is already insecure by default in dockerd).
	InsecureRegistries []string
	// Containerd to use; nil starts a fresh private one for this dockerd.
	Containerd *Containerd
	// DaemonJSON holds extra daemon.json keys (override the defaults).
	DaemonJSON map[string]any
	// ExtraArgs are appended to the dockerd command line.
	ExtraArgs []string
}

// Dockerd is a private dockerd started by StartDockerd.
type Dockerd struct {
	Socket     string // API unix socket path
	Host       string // "unix://" + Socket, for docker -H / DOCKER_HOST
	Dir        string // short base dir under /tmp holding everything below
	DataRoot   string
	ExecRoot   string
	PidFile    string
	ConfigFile string // generated daemon.json
	LogPath    string
	Containerd *Containerd

	d *daemon
}

// StartDockerd starts a private dockerd (own daemon.json, data-root,
// exec-root, pidfile and socket, using a private containerd) inside the
// isolated netns, waits until `docker version` answers, and stops it in
// t.Cleanup. Networking is disabled (bridge none, no iptables) and the
// storage driver is vfs, so it needs no kernel features beyond the netns.
func StartDockerd(t testing.TB, opts DockerdOptions) *Dockerd {
	t.Helper()
	RequireIsolatedNetns(t)
	bin := LookBin(t, "dockerd")
	dockerCLI(t)

	ctrd := opts.Containerd
	if ctrd == nil {
		ctrd = StartContainerd(t)
	}
	dir := shortTempDir(t, "dkd-")
	dk := &Dockerd{
		Dir:        dir,
		Socket:     filepath.Join(dir, "d.sock"),
		DataRoot:   filepath.Join(dir, "data"),
		ExecRoot:   filepath.Join(dir, "x"),
		PidFile:    filepath.Join(dir, "dockerd.pid"),
		ConfigFile: filepath.Join(dir, "daemon.json"),
		LogPath:    filepath.Join(dir, "dockerd.log"),
		Containerd: ctrd,
	}
	dk.Host = "unix://" + dk.Socket

	cfg := map[string]any{
		"registry-mirrors":      nonNil(opts.Mirrors),
		"insecure-registries":   nonNil(opts.InsecureRegistries),
		"storage-driver":        "vfs",
		"iptables":              false,
		"ip6tables":             false,
		"ip-forward":            false,
		"ip-masq":               false,
		"bridge":                "none",
		"userland-proxy":        false,
		"debug":                 true,
		"log-level":             "debug",
		"max-download-attempts": 1,
		// Keep dockerd 20.10 from writing /etc/docker/key.json on the host.
		"deprecated-key-path": filepath.Join(dir, "key.json"),
		"features":            map[string]bool{"buildkit": false},
	}
	for k, v := range opts.DaemonJSON {
		cfg[k] = v
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dk.ConfigFile, b, 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{
		"--config-file", dk.ConfigFile,
		"--data-root", dk.DataRoot,
		"--exec-root", dk.ExecRoot,
		"--pidfile", dk.PidFile,
		"-H", dk.Host,
		"--containerd", ctrd.Address,
		"--group", "root",
	}
	args = append(args, opts.ExtraArgs...)
	// No DOCKER_* / proxy variables from the caller's environment.
	env := cleanEnv()
	d, err := startDaemon("dockerd", dk.LogPath, env, bin, args...)
	if err != nil {
		t.Fatal(err)
	}
	dk.d = d
	t.Cleanup(func() {
		dk.Stop()
		if t.Failed() {
			t.Logf("dockerd log:\n%s", tailFile(dk.LogPath, 80))
		}
	})
	err = d.waitReady(DaemonStartTimeout, func(ctx context.Context) error {
		_, err := runDocker(ctx, t, dk.Socket, "version")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return dk
}

// Stop stops dockerd (idempotent; also done in t.Cleanup). Its containerd,
// if started by StartDockerd, is stopped by its own cleanup afterwards.
func (dk *Dockerd) Stop() {
	if dk.d != nil {
		dk.d.stop(20 * time.Second)
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		uk := strings.ToUpper(k)
		if strings.HasPrefix(uk, "DOCKER_") || strings.HasSuffix(uk, "_PROXY") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// DockerCLIEnv names an optional env var selecting the docker client binary
// (default: "docker" from PATH).
const DockerCLIEnv = "BERTH_DOCKER_CLI"

func dockerCLI(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(DockerCLIEnv); p != "" {
		return p
	}
	return LookBin(t, "docker")
}

var (
	dockerConfigOnce sync.Once
	dockerConfigDir  string
	dockerConfigErr  error
)

// runDocker runs the docker CLI against sock with an empty, private
// DOCKER_CONFIG (no credential helpers, no contexts).
func runDocker(ctx context.Context, t testing.TB, sock string, args ...string) (string, error) {
	cli := dockerCLI(t)
	// One empty config dir shared by all tests in this process; removed by
	// MainInNetns after the tests ran.
	dockerConfigOnce.Do(func() {
		dockerConfigDir, dockerConfigErr = makeOwnedDir("docker-config-")
	})
	if dockerConfigErr != nil {
		return "", dockerConfigErr
	}
	env := append(cleanEnv(), "DOCKER_CONFIG="+dockerConfigDir, "DOCKER_CLI_HINTS=false")
	return runCmd(ctx, env, cli, append([]string{"-H", "unix://" + sock}, args...)...)
}

// Docker runs `docker -H unix://SOCK ARGS...` with the standard timeout.
func Docker(t testing.TB, sock string, args ...string) (string, error) {
	t.Helper()
	return runDocker(context.Background(), t, sock, args...)
}

// DockerPull runs `docker pull REF` against the dockerd at sock and returns
// the pulled image's repo digest ("sha256:..."), i.e. the digest of the
// manifest or index dockerd resolved REF to.
func DockerPull(t testing.TB, sock, ref string) (string, error) {
	t.Helper()
	out, err := Docker(t, sock, "pull", ref)
	t.Logf("docker pull %s:\n%s", ref, trim(out))
	if err != nil {
		return "", err
	}
	out, err = Docker(t, sock, "image", "inspect", "--format", "{{json .RepoDigests}}", ref)
	if err != nil {
		return "", err
	}
	var rds []string
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &rds); err != nil {
		return "", fmt.Errorf("parse RepoDigests %q: %w", out, err)
	}
	if len(rds) == 0 {
		return "", fmt.Errorf("image %s has no RepoDigests", ref)
	}
	// Prefer the entry for the repository we pulled.
	repo := ref
	if i := strings.LastIndex(repo, "@"); i >= 0 {
		repo = repo[:i]
	}
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		repo = repo[:i]
	}
	pick := rds[0]
	for _, rd := range rds {
		name, _, _ := strings.Cut(rd, "@")
		if familiar(name) == familiar(repo) {
			pick = rd
			break
		}
	}
	_, dgst, ok := strings.Cut(pick, "@")
	if !ok {
		return "", fmt.Errorf("malformed repo digest %q", pick)
	}
	return dgst, nil
}

// familiar shortens docker.io/library/x to x and docker.io/y/x to y/x.
func familiar(name string) string {
	name = strings.TrimPrefix(name, "docker.io/")
	name = strings.TrimPrefix(name, "index.docker.io/")
	return strings.TrimPrefix(name, "library/")
}

func removeDockerConfigDir() {
	if dockerConfigDir != "" {
		os.RemoveAll(dockerConfigDir)
	}
}
