package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// loginCmd implements `berth login` and `berth get-login-password`: both
// ask the registry's token endpoint for a token with the user's password
// and print it, for `docker login --username U --password-stdin`, as
// `aws ecr get-login-password` does for ECR.
func loginCmd(ctx context.Context, name string, args []string, stdin io.Reader, out io.Writer) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	reg := fs.String("registry", envOr("BERTH_REGISTRY", "http://127.0.0.1:5000"), "Berth's registry URL")
	user := fs.String("username", os.Getenv("BERTH_USERNAME"), "user name")
	stdinPass := fs.Bool("password-stdin", false, "read the password from standard input")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *user == "" {
		return errors.New("--username (or BERTH_USERNAME) is required")
	}
	pass := os.Getenv("BERTH_PASSWORD")
	if *stdinPass || pass == "" {
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && line == "" {
			return fmt.Errorf("read password from standard input: %w", err)
		}
		pass = strings.TrimRight(line, "\r\n")
	}
	tok, err := fetchToken(ctx, *reg, *user, pass)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, tok)
	return nil
}

func fetchToken(ctx context.Context, registryURL, user, pass string) (string, error) {
	u, err := url.Parse(strings.TrimRight(registryURL, "/") + "/token")
	if err != nil {
		return "", err
	}
	// login=true: a login token, the only kind the registry accepts in
	// place of a password (docker login).
	u.RawQuery = url.Values{"service": {"berth"}, "login": {"true"}}.Encode()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", err
	}
	req.SetBasicAuth(user, pass)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("login refused: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	var t struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(body, &t); err != nil || t.Token == "" {
		return "", fmt.Errorf("the token endpoint answered no token")
	}
	return t.Token, nil
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// membersCmd prints the cluster's members from a node's admin listener.
func membersCmd(ctx context.Context, args []string, out io.Writer) error {
	admin := envOr("BERTH_ADMIN", "http://127.0.0.1:5001")
	if len(args) > 1 && args[0] == "--admin" {
		admin = args[1]
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, admin+"/cluster/members", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("admin answered %s", resp.Status)
	}
	_, err = io.Copy(out, resp.Body)
	return err
}
