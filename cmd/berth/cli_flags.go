package main

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"

	"berth/admin"
)

func requireFlag(flagName, v string) error {
	if v == "" {
		return fmt.Errorf("--%s is required", flagName)
	}
	return nil
}

// listFlag is a flag given several times.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " ") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// expandLists turns the aws CLI's "--flag v1 v2" into "--flag=v1
// --flag=v2" for the flags that take several values.
func expandLists(args, lists []string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(out, args[i:]...)
		}
		name := strings.TrimLeft(a, "-")
		if !strings.HasPrefix(a, "-") || strings.Contains(name, "=") || !slices.Contains(lists, name) {
			out = append(out, a)
			continue
		}
		j := i + 1
		for ; j < len(args) && !strings.HasPrefix(args[j], "-"); j++ {
			out = append(out, "--"+name+"="+args[j])
		}
		if j == i+1 {
			out = append(out, a) // no value: the flag package says so
		}
		i = j - 1
	}
	return out
}

// splitNames splits values on commas and spaces.
func splitNames(vals []string) []string {
	var out []string
	for _, v := range vals {
		out = append(out, strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' })...)
	}
	return out
}

// shorthand parses "k1=v1,k2=v2" with the given keys.
func shorthand(s string, keys ...string) (map[string]string, error) {
	out := map[string]string{}
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || !slices.Contains(keys, k) {
			return nil, fmt.Errorf("%q: expected %s", s, strings.Join(keys, "=...,")+"=...")
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("%q: %s given twice", s, k)
		}
		out[k] = v
	}
	return out, nil
}

// isJSON reports whether a flag value is JSON (the aws CLI takes both).
func looksJSON(s string) bool {
	s = strings.TrimSpace(s)
	return strings.HasPrefix(s, "[") || strings.HasPrefix(s, "{")
}

// decodeJSONList decodes a JSON array or a single object into out.
func decodeJSONList[T any](s string) ([]T, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "{") {
		var one T
		if err := json.Unmarshal([]byte(s), &one); err != nil {
			return nil, err
		}
		return []T{one}, nil
	}
	var many []T
	err := json.Unmarshal([]byte(s), &many)
	return many, err
}

func parseImageIDs(vals []string) ([]admin.ImageID, error) {
	var out []admin.ImageID
	for _, v := range vals {
		if looksJSON(v) {
			ids, err := decodeJSONList[admin.ImageID](v)
			if err != nil {
				return nil, fmt.Errorf("--image-ids: %w", err)
			}
			out = append(out, ids...)
			continue
		}
		m, err := shorthand(v, "imageDigest", "imageTag")
		if err != nil {
			return nil, fmt.Errorf("--image-ids: %w", err)
		}
		out = append(out, admin.ImageID{ImageDigest: m["imageDigest"], ImageTag: m["imageTag"]})
	}
	return out, nil
}

func parseFilters(vals []string) ([]admin.ExclusionFilter, error) {
	var out []admin.ExclusionFilter
	for _, v := range vals {
		switch {
		case looksJSON(v):
			fs, err := decodeJSONList[admin.ExclusionFilter](v)
			if err != nil {
				return nil, fmt.Errorf("--image-tag-mutability-exclusion-filters: %w", err)
			}
			out = append(out, fs...)
		case strings.Contains(v, "="):
			m, err := shorthand(v, "filterType", "filter")
			if err != nil {
				return nil, fmt.Errorf("--image-tag-mutability-exclusion-filters: %w", err)
			}
			out = append(out, admin.ExclusionFilter{FilterType: m["filterType"], Filter: m["filter"]})
		default:
			out = append(out, admin.ExclusionFilter{FilterType: admin.FilterWildcard, Filter: v})
		}
	}
	return out, nil
}

func parseTagFilter(s string) (*admin.ListImagesFilter, error) {
	if s == "" {
		return nil, nil
	}
	if looksJSON(s) {
		var f admin.ListImagesFilter
		if err := json.Unmarshal([]byte(s), &f); err != nil {
			return nil, fmt.Errorf("--filter: %w", err)
		}
		return &f, nil
	}
	m, err := shorthand(s, "tagStatus")
	if err != nil {
		return nil, fmt.Errorf("--filter: %w", err)
	}
	return &admin.ListImagesFilter{TagStatus: m["tagStatus"]}, nil
}

// policyText reads file://PATH values.
func policyText(s string) (string, error) {
	path, ok := strings.CutPrefix(s, "file://")
	if !ok {
		return s, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("policy file: %w", err)
	}
	return string(b), nil
}
