// Package upstream holds the upstream registries Berth mirrors: the rules
// that route a request to one, and the client that talks to it.
package upstream

import "berth/config"

// Rule is one configured upstream registry; the configuration owns its
// fields, defaults and validation.
type Rule = config.Upstream

// Credential is one account of a rule's credential pool.
type Credential = config.Credential

// Validate reports every problem with the rule set at once.
func Validate(rules []Rule) error { return config.ValidateUpstreams(rules) }
