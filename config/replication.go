package config

import (
	"fmt"
	"net/url"
)

// Replication copies pushes to local repositories to other registries.
type Replication struct {
	// Repositories are local repository names or "*" patterns.
	Repositories []string `yaml:"repositories"`
	// Destinations receive every push and tag move.
	Destinations []Destination `yaml:"destinations"`
}

// Destination is a registry a replication rule copies to.
type Destination struct {
	// URL is the registry's base URL, http or https.
	URL string `yaml:"url"`
	// Prefix is put before the repository name at the destination.
	Prefix string `yaml:"prefix"`
	// Username and PasswordFile, or DockerConfig, log in.
	Username     string `yaml:"username"`
	PasswordFile string `yaml:"passwordFile"`
	DockerConfig string `yaml:"dockerConfig"`
}

func validateReplication(rules []Replication) []error {
	var errs []error
	for i, r := range rules {
		at := fmt.Sprintf("replication[%d]", i)
		if len(r.Repositories) == 0 {
			errs = append(errs, fmt.Errorf("%s.repositories: list at least one repository or pattern", at))
		}
		if len(r.Destinations) == 0 {
			errs = append(errs, fmt.Errorf("%s.destinations: list at least one destination", at))
		}
		for j, d := range r.Destinations {
			dat := fmt.Sprintf("%s.destinations[%d]", at, j)
			u, err := url.Parse(d.URL)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				errs = append(errs, fmt.Errorf("%s.url: %q is not an http or https URL of a registry", dat, d.URL))
			}
			if d.PasswordFile != "" && d.Username == "" {
				errs = append(errs, fmt.Errorf("%s.passwordFile: needs username", dat))
			}
			if d.PasswordFile != "" && d.DockerConfig != "" {
				errs = append(errs, fmt.Errorf("%s: give passwordFile or dockerConfig, not both", dat))
			}
		}
	}
	return errs
}
