package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"berth/store"
	"berth/upstream"

	"go.uber.org/zap"
)

// ruleRecord is a pull-through cache rule created through the API, as
// stored (store.PolicyCacheRule, named by the rule's name).
type ruleRecord struct {
	Name      string        `json:"name"`
	Prefix    string        `json:"prefix"`
	Registry  string        `json:"registry,omitempty"`
	URL       string        `json:"url"`
	Default   bool          `json:"default,omitempty"`
	TTL       time.Duration `json:"ttl,omitempty"`
	CreatedAt time.Time     `json:"createdAt"`
}

func (r ruleRecord) rule() upstream.Rule {
	return upstream.Rule{Name: r.Name, Prefix: r.Prefix, Registry: r.Registry, URL: r.URL, Default: r.Default, TTL: r.TTL}.WithDefaults()
}

func loadRuleRecords(ctx context.Context, st interface {
	ListPolicies(ctx context.Context, kind string) ([]store.PolicyEntry, error)
}) ([]ruleRecord, error) {
	entries, err := st.ListPolicies(ctx, store.PolicyCacheRule)
	if err != nil {
		return nil, err
	}
	var out []ruleRecord
	for _, e := range entries {
		var r ruleRecord
		if err := json.Unmarshal(e.Value, &r); err != nil {
			return nil, fmt.Errorf("pull-through cache rule %s: corrupt record: %w", e.Name, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// PolicyLister is the part of the store MergeRules reads.
type PolicyLister interface {
	ListPolicies(ctx context.Context, kind string) ([]store.PolicyEntry, error)
}

// MergeRules returns the config's upstream rules followed by the ones
// created through the API and persisted in the store, for the daemon to
// build its router from at start. A persisted rule that conflicts with the
// config (same name, prefix or registry, a second default, or a local
// prefix) is left out; the returned error lists those, for a warning, and
// does not make the result unusable.
func MergeRules(ctx context.Context, st PolicyLister, config []upstream.Rule, localPrefixes []string) ([]upstream.Rule, error) {
	recs, err := loadRuleRecords(ctx, st)
	if err != nil {
		return config, err
	}
	out := slices.Clone(config)
	var errs []error
	for _, r := range recs {
		if err := conflicts(out, localPrefixes, r.rule()); err != nil {
			errs = append(errs, fmt.Errorf("pull-through cache rule %s left out: %w", r.Name, err))
			continue
		}
		out = append(out, r.rule())
	}
	return out, errors.Join(errs...)
}

// conflicts checks a new rule against existing ones and local prefixes.
func conflicts(existing []upstream.Rule, localPrefixes []string, r upstream.Rule) *Error {
	if slices.Contains(localPrefixes, r.Prefix) {
		return invalidf("ecrRepositoryPrefix", "%q is a local prefix (local.prefixes)", r.Prefix)
	}
	for _, e := range existing {
		switch {
		case e.Name == r.Name:
			return conflict(CodeRuleAlreadyExists, "a rule named %s already exists", r.Name)
		case r.Prefix != "" && e.Prefix == r.Prefix:
			return conflict(CodeRuleAlreadyExists, "rule %s already has prefix %s", e.Name, r.Prefix)
		case r.Registry != "" && strings.EqualFold(e.Registry, r.Registry):
			return conflict(CodeRuleAlreadyExists, "rule %s already mirrors registry %s", e.Name, r.Registry)
		case r.Default && e.Default:
			return conflict(CodeRuleAlreadyExists, "rule %s is already the default", e.Name)
		}
	}
	return nil
}

// describeRule turns a rule into its wire form.
func (s *Service) describeRule(r upstream.Rule, source string, createdAt time.Time) PullThroughCacheRule {
	active := false
	for _, live := range s.rules() {
		if live.Name == r.Name && live.URL == r.URL && live.Prefix == r.Prefix {
			active = true
		}
	}
	out := PullThroughCacheRule{EcrRepositoryPrefix: r.Prefix, UpstreamRegistryURL: r.URL, UpstreamRegistry: r.Registry,
		CreatedAt: timePtr(createdAt), Name: r.Name, Default: r.Default, TTL: r.TTL.String(), Source: source, Active: active}
	if len(r.URLs) > 1 {
		out.UpstreamRegistryURLs = r.URLs
	}
	if router := s.live().Router; active && router != nil {
		if u := router.Upstream(r.Name); u != nil {
			out.Endpoints = endpointHealth(u.Endpoints())
		}
	}
	return out
}

func (s *Service) describePullThroughCacheRules(ctx context.Context, req *DescribePullThroughCacheRulesRequest) (*DescribePullThroughCacheRulesResponse, error) {
	recs, err := loadRuleRecords(ctx, s.o.Store)
	if err != nil {
		return nil, err
	}
	persisted := map[string]bool{}
	for _, r := range recs {
		persisted[r.Name] = true
	}
	var all []PullThroughCacheRule
	for _, r := range s.live().ConfigRules {
		if !persisted[r.Name] { // a config merged with the persisted rules lists them too
			all = append(all, s.describeRule(r.WithDefaults(), "config", time.Time{}))
		}
	}
	for _, r := range recs {
		all = append(all, s.describeRule(r.rule(), "api", r.CreatedAt))
	}
	out := &DescribePullThroughCacheRulesResponse{PullThroughCacheRules: []PullThroughCacheRule{}}
	for _, r := range all {
		if len(req.EcrRepositoryPrefixes) == 0 || slices.Contains(req.EcrRepositoryPrefixes, r.EcrRepositoryPrefix) {
			out.PullThroughCacheRules = append(out.PullThroughCacheRules, r)
		}
	}
	for _, p := range req.EcrRepositoryPrefixes {
		if !slices.ContainsFunc(out.PullThroughCacheRules, func(r PullThroughCacheRule) bool { return r.EcrRepositoryPrefix == p }) {
			return nil, notFound(CodeRuleNotFound, "no pull-through cache rule has prefix %s", p)
		}
	}
	return out, nil
}

// ruleFields maps upstream.Validate's field names to the API's.
var ruleFields = [][2]string{
	{".name", "name"}, {".prefix", "ecrRepositoryPrefix"}, {".url", "upstreamRegistryUrl"},
	{".registry", "upstreamRegistry"}, {".ttl", "ttl"},
}

func (s *Service) createPullThroughCacheRule(ctx context.Context, req *CreatePullThroughCacheRuleRequest) (*PullThroughCacheRuleResponse, error) {
	if req.EcrRepositoryPrefix == "" {
		return nil, invalidf("ecrRepositoryPrefix", "required")
	}
	if req.UpstreamRegistryURL == "" {
		return nil, invalidf("upstreamRegistryUrl", "required")
	}
	rawURL := req.UpstreamRegistryURL
	if !strings.Contains(rawURL, "://") {
		rawURL = "https://" + rawURL
	}
	rec := ruleRecord{Name: req.Name, Prefix: req.EcrRepositoryPrefix, Registry: req.UpstreamRegistry, URL: strings.TrimRight(rawURL, "/"),
		Default: req.Default, CreatedAt: s.o.Now().UTC()}
	if rec.Name == "" {
		rec.Name = rec.Prefix
	}
	if rec.Registry == "" {
		if u, err := url.Parse(rec.URL); err == nil {
			rec.Registry = u.Host
		}
	}
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil || d <= 0 {
			return nil, invalidf("ttl", "%q is not a positive duration such as 24h", req.TTL)
		}
		rec.TTL = d
	}
	rule := rec.rule()
	if err := upstream.Validate([]upstream.Rule{rule}); err != nil {
		msg := err.Error()
		field := ""
		for _, f := range ruleFields {
			if field == "" && strings.Contains(msg, "upstreams[0]"+f[0]+":") {
				field = f[1]
			}
		}
		msg = strings.ReplaceAll(msg, "upstreams[0]", "rule")
		return nil, invalidf(field, "%s", msg)
	}
	recs, err := loadRuleRecords(ctx, s.o.Store)
	if err != nil {
		return nil, err
	}
	existing := slices.Clone(s.live().ConfigRules)
	for _, r := range recs {
		if !slices.ContainsFunc(existing, func(e upstream.Rule) bool { return e.Name == r.Name }) {
			existing = append(existing, r.rule())
		}
	}
	if err := conflicts(existing, s.live().LocalPrefixes, rule); err != nil {
		return nil, err
	}
	v, _ := json.Marshal(rec)
	if err := s.o.Store.PutPolicy(ctx, store.PolicyCacheRule, rec.Name, v); err != nil {
		return nil, err
	}
	s.log.Info("pull-through cache rule created", zap.String("name", rec.Name), zap.String("prefix", rec.Prefix), zap.String("url", rec.URL))
	note := "stored; the node routes by it after a restart (or a reload)"
	if s.o.OnRulesChanged != nil {
		s.o.OnRulesChanged()
		note = "stored; the node routes by it now"
	}
	return &PullThroughCacheRuleResponse{PullThroughCacheRule: s.describeRule(rule, "api", rec.CreatedAt), Note: note}, nil
}

func (s *Service) deletePullThroughCacheRule(ctx context.Context, req *DeletePullThroughCacheRuleRequest) (*PullThroughCacheRuleResponse, error) {
	if req.EcrRepositoryPrefix == "" {
		return nil, invalidf("ecrRepositoryPrefix", "required")
	}
	recs, err := loadRuleRecords(ctx, s.o.Store)
	if err != nil {
		return nil, err
	}
	for _, r := range recs {
		if r.Prefix != req.EcrRepositoryPrefix {
			continue
		}
		if err := s.o.Store.DeletePolicy(ctx, store.PolicyCacheRule, r.Name); err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		s.log.Info("pull-through cache rule deleted", zap.String("name", r.Name), zap.String("prefix", r.Prefix))
		note := "deleted; the node stops routing by it after a restart (or a reload); what it cached stays until evicted"
		if s.o.OnRulesChanged != nil {
			s.o.OnRulesChanged()
			note = "deleted; the node no longer routes by it; what it cached stays until evicted"
		}
		return &PullThroughCacheRuleResponse{PullThroughCacheRule: s.describeRule(r.rule(), "api", r.CreatedAt), Note: note}, nil
	}
	for _, r := range s.live().ConfigRules {
		if r.Prefix == req.EcrRepositoryPrefix {
			return nil, invalidf("ecrRepositoryPrefix", "rule %s with prefix %s comes from the config file; remove it there", r.Name, r.Prefix)
		}
	}
	return nil, notFound(CodeRuleNotFound, "no pull-through cache rule has prefix %s", req.EcrRepositoryPrefix)
}
