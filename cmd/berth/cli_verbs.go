package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"time"

	"berth/admin"
)

// verb is one admin command.
type cliVerb struct {
	summary string
	// lists are the flags that take several values, as the aws CLI's do:
	// --image-ids imageTag=a imageTag=b (or the flag repeated).
	lists []string
	// flags registers the verb's flags and returns what builds the
	// request from them.
	flags func(fs *flag.FlagSet) func() (any, error)
	// table prints the answer as a table (-o table).
	table func(w io.Writer, body []byte) error
	// progress, when set, is shown while the verb runs.
	progress string
	// run replaces the single request (previews that wait).
	run func(ctx context.Context, k *adminCall, req any) ([]byte, error)
}

// cliVerbs is the table of the admin verbs, by name: a new map for each
// caller, so there is no shared table to change.
func cliVerbs() map[string]cliVerb {
	verbs := map[string]cliVerb{}
	for _, group := range []map[string]cliVerb{
		repositoryVerbs(), imageVerbs(), policyVerbs(), lifecycleVerbs(), cacheVerbs(), nodeVerbs(), vulnVerbs(), scanVerbs(),
	} {
		maps.Copy(verbs, group)
	}
	return verbs
}

// repositoryVerbs are the verbs that create, list and delete local repositories and set their tag mutability.
func repositoryVerbs() map[string]cliVerb {
	return map[string]cliVerb{
		"create-repository": {
			summary: "create a local repository",
			lists:   []string{"image-tag-mutability-exclusion-filters"},
			flags: func(fs *flag.FlagSet) func() (any, error) {
				name := repoFlag(fs)
				m := fs.String("image-tag-mutability", "", "MUTABLE (default), IMMUTABLE or IMMUTABLE_WITH_EXCLUSION")
				var ex listFlag
				fs.Var(&ex, "image-tag-mutability-exclusion-filters", "tag patterns that stay mutable: filterType=WILDCARD,filter=latest* (or just latest*), several allowed")
				return func() (any, error) {
					filters, err := parseFilters(ex)
					if err != nil {
						return nil, err
					}
					return admin.CreateRepositoryRequest{RepositoryName: *name, ImageTagMutability: *m, ImageTagMutabilityExclusionFilters: filters}, requireFlag("repository-name", *name)
				}
			},
			table: tableRepository,
		},
		"describe-repositories": {
			summary: "describe local repositories (all, or --repository-names)",
			lists:   []string{"repository-names"},
			flags: namesFlag("repository-names", "repositories to describe, several allowed", func(names []string) any {
				return admin.DescribeRepositoriesRequest{RepositoryNames: names}
			}),
			table: tableRepositories,
			run:   describeEveryRepository,
		},
		"delete-repository": {
			summary: "delete a local repository (--force: with its images)",
			flags: func(fs *flag.FlagSet) func() (any, error) {
				name := repoFlag(fs)
				force := fs.Bool("force", false, "delete the repository's images too")
				return func() (any, error) {
					return admin.DeleteRepositoryRequest{RepositoryName: *name, Force: *force}, requireFlag("repository-name", *name)
				}
			},
			table: tableRepository,
		},
		"put-image-tag-mutability": {
			summary: "set a local repository's tag mutability",
			lists:   []string{"image-tag-mutability-exclusion-filters"},
			flags: func(fs *flag.FlagSet) func() (any, error) {
				name := repoFlag(fs)
				m := fs.String("image-tag-mutability", "", "MUTABLE, IMMUTABLE or IMMUTABLE_WITH_EXCLUSION")
				var ex listFlag
				fs.Var(&ex, "image-tag-mutability-exclusion-filters", "tag patterns that stay mutable: filterType=WILDCARD,filter=latest* (or just latest*), several allowed")
				return func() (any, error) {
					filters, err := parseFilters(ex)
					if err != nil {
						return nil, err
					}
					return admin.PutImageTagMutabilityRequest{RepositoryName: *name, ImageTagMutability: *m, ImageTagMutabilityExclusionFilters: filters},
						errors.Join(requireFlag("repository-name", *name), requireFlag("image-tag-mutability", *m))
				}
			},
			table: tableMutability,
		},
	}
}

// imageVerbs are the verbs that list, describe and delete images.
func imageVerbs() map[string]cliVerb {
	return map[string]cliVerb{
		"list-images": {
			summary: "list the images of a repository, local or cached (docker-hub/library/alpine)",
			flags: func(fs *flag.FlagSet) func() (any, error) {
				name := repoFlag(fs)
				filter := fs.String("filter", "", "tagStatus=TAGGED, UNTAGGED or ANY")
				return func() (any, error) {
					f, err := parseTagFilter(*filter)
					return admin.ListImagesRequest{RepositoryName: *name, Filter: f}, errors.Join(err, requireFlag("repository-name", *name))
				}
			},
			table: tableImageIDs,
		},
		"describe-images": {
			summary: "describe the images of a repository, local or cached",
			lists:   []string{"image-ids"},
			flags: func(fs *flag.FlagSet) func() (any, error) {
				name := repoFlag(fs)
				var ids listFlag
				fs.Var(&ids, "image-ids", "images to describe: imageDigest=sha256:...,imageTag=v1 (either or both), several allowed")
				filter := fs.String("filter", "", "tagStatus=TAGGED, UNTAGGED or ANY")
				return func() (any, error) {
					f, err := parseTagFilter(*filter)
					if err != nil {
						return nil, err
					}
					imageIDs, err := parseImageIDs(ids)
					return admin.DescribeImagesRequest{RepositoryName: *name, ImageIDs: imageIDs, Filter: f}, errors.Join(err, requireFlag("repository-name", *name))
				}
			},
			table: tableImageDetails,
		},
		"batch-delete-image": {
			summary: "delete images by digest, or untag (the last tag deletes the image)",
			lists:   []string{"image-ids"},
			flags: func(fs *flag.FlagSet) func() (any, error) {
				name := repoFlag(fs)
				var ids listFlag
				fs.Var(&ids, "image-ids", "images to delete: imageDigest=sha256:... or imageTag=v1, several allowed")
				return func() (any, error) {
					imageIDs, err := parseImageIDs(ids)
					if err == nil && len(imageIDs) == 0 {
						err = errors.New("--image-ids is required")
					}
					return admin.BatchDeleteImageRequest{RepositoryName: *name, ImageIDs: imageIDs}, errors.Join(err, requireFlag("repository-name", *name))
				}
			},
			table: tableBatchDelete,
		},
	}
}

// policyVerbs are the verbs that set, read and delete lifecycle and repository policies.
func policyVerbs() map[string]cliVerb {
	return map[string]cliVerb{
		"put-lifecycle-policy": {
			summary: "set the lifecycle policy of a repository or a pattern (private/*)",
			flags: policyFlags("lifecycle-policy-text", func(name, text string) any {
				return admin.PutLifecyclePolicyRequest{RepositoryName: name, LifecyclePolicyText: text}
			}),
			table: tablePolicy,
		},
		"get-lifecycle-policy": {
			summary: "show the lifecycle policy that applies to a repository (or is set on a pattern)",
			flags:   nameOnly,
			table:   tablePolicy,
		},
		"delete-lifecycle-policy": {
			summary: "delete the lifecycle policy set on a repository or a pattern",
			flags:   nameOnly,
			table:   tablePolicy,
		},
		"set-repository-policy": {
			summary: "set who may pull, push, delete or list a repository or a pattern (private/*), in ECR's policy JSON",
			flags: policyFlags("policy-text", func(name, text string) any {
				return admin.SetRepositoryPolicyRequest{RepositoryName: name, PolicyText: text}
			}),
			table: tableRepositoryPolicy,
		},
		"get-repository-policy": {
			summary: "show the repository policy set on a repository or a pattern",
			flags:   nameOnly,
			table:   tableRepositoryPolicy,
		},
		"delete-repository-policy": {
			summary: "delete the repository policy set on a repository or a pattern",
			flags:   nameOnly,
			table:   tableRepositoryPolicy,
		},
		"describe-lifecycle-policies": {
			summary: "list every lifecycle policy and what it is set on",
			flags:   noFlags(struct{}{}),
			table:   tablePolicies,
		},
	}
}

// lifecycleVerbs are the verbs that preview and run lifecycle policies.
func lifecycleVerbs() map[string]cliVerb {
	return map[string]cliVerb{
		"start-lifecycle-policy-preview": {
			summary: "preview what a lifecycle policy would expire (--wait for the result)",
			flags: func(fs *flag.FlagSet) func() (any, error) {
				name := repoFlag(fs)
				text := fs.String("lifecycle-policy-text", "", "preview this policy instead of the stored one (JSON or file://policy.json)")
				wait := fs.Bool("wait", false, "wait for the preview and print it")
				return func() (any, error) {
					t, err := policyText(*text)
					return previewReq{start: &admin.StartLifecyclePolicyPreviewRequest{RepositoryName: *name, LifecyclePolicyText: t}, name: *name, wait: *wait},
						errors.Join(err, requireFlag("repository-name", *name))
				}
			},
			run:   runPreview,
			table: tablePreview,
		},
		"get-lifecycle-policy-preview": {
			summary: "show a lifecycle policy preview (--wait until it completes)",
			flags: func(fs *flag.FlagSet) func() (any, error) {
				name := repoFlag(fs)
				wait := fs.Bool("wait", false, "wait while the preview is in progress")
				return func() (any, error) {
					return previewReq{name: *name, wait: *wait}, requireFlag("repository-name", *name)
				}
			},
			run:   runPreview,
			table: tablePreview,
		},
		"run-lifecycle": {
			summary: "apply the lifecycle policies now (all, or --repository-name NAME|PATTERN)",
			flags: func(fs *flag.FlagSet) func() (any, error) {
				name := fs.String("repository-name", "", "only the repositories this name or pattern matches")
				return func() (any, error) { return admin.RunLifecycleRequest{RepositoryName: *name}, nil }
			},
			progress: "applying lifecycle policies",
			table:    tableRun,
		},
	}
}

// cacheVerbs are the verbs of the pull-through cache rules and the cache.
func cacheVerbs() map[string]cliVerb {
	return map[string]cliVerb{
		"describe-pull-through-cache-rules": {
			summary: "list the upstream rules: the config's and those created here",
			lists:   []string{"ecr-repository-prefixes"},
			flags: namesFlag("ecr-repository-prefixes", "only these prefixes, several allowed", func(prefixes []string) any {
				return admin.DescribePullThroughCacheRulesRequest{EcrRepositoryPrefixes: prefixes}
			}),
			table: tableRules,
		},
		"create-pull-through-cache-rule": {
			summary: "store a new upstream rule (applied at the next start)",
			flags: func(fs *flag.FlagSet) func() (any, error) {
				var r admin.CreatePullThroughCacheRuleRequest
				fs.StringVar(&r.EcrRepositoryPrefix, "ecr-repository-prefix", "", "the prefix clients pull by (ghcr for ghcr/OWNER/IMAGE)")
				fs.StringVar(&r.UpstreamRegistryURL, "upstream-registry-url", "", "the upstream's URL (https://ghcr.io; a bare host means https)")
				fs.StringVar(&r.UpstreamRegistry, "upstream-registry", "", "the registry host containerd names in ?ns= (default: the URL's host)")
				fs.StringVar(&r.Name, "name", "", "the rule's name (default: the prefix)")
				fs.BoolVar(&r.Default, "default", false, "take every name no other rule claims")
				fs.StringVar(&r.TTL, "ttl", "", "how long tags are served without asking the upstream (24h)")
				return func() (any, error) {
					return r, errors.Join(requireFlag("ecr-repository-prefix", r.EcrRepositoryPrefix), requireFlag("upstream-registry-url", r.UpstreamRegistryURL))
				}
			},
			table: tableRule,
		},
		"delete-pull-through-cache-rule": {
			summary: "delete an upstream rule created here (effective at the next start)",
			flags: func(fs *flag.FlagSet) func() (any, error) {
				p := fs.String("ecr-repository-prefix", "", "the rule's prefix")
				return func() (any, error) {
					return admin.DeletePullThroughCacheRuleRequest{EcrRepositoryPrefix: *p}, requireFlag("ecr-repository-prefix", *p)
				}
			},
			table: tableRule,
		},
		"describe-cache": {
			summary: "show the store, the cache's hit ratio and what is cached per upstream",
			flags:   noFlags(admin.DescribeCacheRequest{}),
			table:   tableCache,
		},
	}
}

// nodeVerbs are the verbs that act on the node: tokens, pins, garbage collection, sync and replication.
func nodeVerbs() map[string]cliVerb {
	return map[string]cliVerb{
		"revoke-tokens": {
			summary: "end every token a user holds now (incident response)",
			flags: func(fs *flag.FlagSet) func() (any, error) {
				user := fs.String("user", "", "the user whose tokens end (required)")
				return func() (any, error) {
					if err := requireFlag("user", *user); err != nil {
						return nil, err
					}
					return admin.RevokeTokensRequest{UserName: *user}, nil
				}
			},
			table: tableRevoke,
		},
		"rotate-key": {
			summary: "make the key in a file on the node the store's encryption key: rewraps every data key, online",
			flags: func(fs *flag.FlagSet) func() (any, error) {
				file := fs.String("new-key-file", "", "the new key file, on the node: 64 hex characters (openssl rand -hex 32) (required)")
				return func() (any, error) {
					return admin.RotateKeyRequest{NewKeyFile: *file}, requireFlag("new-key-file", *file)
				}
			},
			table: tableRotateKey,
		},
		"pin-image": {
			summary: "pin a cached image (by --image-id imageDigest=... or imageTag=...): never evicted",
			flags:   pinFlags,
			table:   tablePin,
		},
		"unpin-image": {
			summary: "unpin a cached image pinned with pin-image",
			flags:   pinFlags,
			table:   tablePin,
		},
		"start-gc": {
			summary: "run garbage collection now",
			flags: func(fs *flag.FlagSet) func() (any, error) {
				grace := fs.String("grace-period", "", "keep unreferenced blobs younger than this (default: the node's local.gcGrace)")
				return func() (any, error) { return admin.StartGCRequest{GracePeriod: *grace}, nil }
			},
			progress: "garbage collection",
			table:    tableGC,
		},
		"sync-now": {
			summary:  "run the sync rules now (--rule NAME: one; --wait: answer when done)",
			flags:    syncNowFlags,
			progress: "sync",
			table:    tableSync,
		},
		"describe-image-replication-status": {
			summary: "show an image's replication to each destination (--repository-name R --image-id imageTag=v1)",
			flags:   replicationStatusFlags,
			table:   tableReplication,
		},
		"describe-sync": {
			summary: "show each sync rule's last run (when, images, bytes, errors) and its next",
			flags:   noFlags(admin.DescribeSyncRequest{}),
			table:   tableSync,
		},
	}
}

// namesFlag is the flags of a verb whose one flag, name, lists names
// (several allowed, or none: all): request builds its request from them.
func namesFlag(name, usage string, request func(names []string) any) func(fs *flag.FlagSet) func() (any, error) {
	return func(fs *flag.FlagSet) func() (any, error) {
		var names listFlag
		fs.Var(&names, name, usage)
		return func() (any, error) { return request(splitNames(names)), nil }
	}
}

func repoFlag(fs *flag.FlagSet) *string {
	return fs.String("repository-name", "", "the repository: private/app, or a cached one as pulled (docker-hub/library/alpine)")
}

// policyFlags are the flags of the verbs that set a policy on a repository
// or pattern: --repository-name and the policy text (inline or file://).
func policyFlags(textFlag string, request func(name, text string) any) func(fs *flag.FlagSet) func() (any, error) {
	return func(fs *flag.FlagSet) func() (any, error) {
		name := repoFlag(fs)
		text := fs.String(textFlag, "", "the policy JSON, or file://policy.json")
		return func() (any, error) {
			t, err := policyText(*text)
			return request(*name, t), errors.Join(err, requireFlag("repository-name", *name), requireFlag(textFlag, *text))
		}
	}
}

func nameOnly(fs *flag.FlagSet) func() (any, error) {
	name := fs.String("repository-name", "", "the repository, or a pattern such as private/*")
	return func() (any, error) {
		return admin.RepositoryNameRequest{RepositoryName: *name}, requireFlag("repository-name", *name)
	}
}

func noFlags(req any) func(fs *flag.FlagSet) func() (any, error) {
	return func(*flag.FlagSet) func() (any, error) { return func() (any, error) { return req, nil } }
}

// previewReq is a preview verb's request.
type previewReq struct {
	start *admin.StartLifecyclePolicyPreviewRequest // nil for get
	name  string
	wait  bool
}

// runPreview starts a preview (start-) or reads one (get-), and with
// --wait polls it until it is no longer in progress, showing progress.
func runPreview(ctx context.Context, k *adminCall, req any) ([]byte, error) {
	r := req.(previewReq)
	name := r.name
	if r.start != nil {
		body, err := k.do(ctx, "start-lifecycle-policy-preview", r.start)
		if err != nil || !r.wait {
			return body, err
		}
		var st admin.LifecyclePolicyPreview
		if json.Unmarshal(body, &st) == nil && st.RepositoryName != "" {
			name = st.RepositoryName
		}
	}
	p := &cliProgress{c: k.c}
	start := time.Now()
	for {
		body, err := k.do(ctx, "get-lifecycle-policy-preview", admin.RepositoryNameRequest{RepositoryName: name})
		if err != nil || !r.wait {
			return body, err
		}
		var pv admin.LifecyclePolicyPreview
		if err := json.Unmarshal(body, &pv); err != nil {
			return body, nil
		}
		pr := pv.Progress
		if pr == nil {
			pr = &admin.PreviewProgress{}
		}
		if pv.Status != admin.PreviewInProgress {
			n := 0
			if pv.Summary != nil {
				n = pv.Summary.ExpiringImageTotalCount
			}
			p.done(fmt.Sprintf("preview of %s: %s in %s, %d images evaluated in %d repositories, %d would expire",
				name, pv.Status, time.Since(start).Round(time.Millisecond), pr.ImagesEvaluated, pr.RepositoriesDone, n))
			return body, nil
		}
		p.update(fmt.Sprintf("previewing %s: %d/%d repositories, %d images evaluated", name, pr.RepositoriesDone, pr.RepositoriesTotal, pr.ImagesEvaluated))
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(k.c.poll):
		}
	}
}

// pinFlags are pin-image's and unpin-image's: a repository and one image.
func pinFlags(fs *flag.FlagSet) func() (any, error) {
	name := repoFlag(fs)
	id := fs.String("image-id", "", "the image: imageDigest=sha256:... or imageTag=v1")
	return func() (any, error) {
		ids, err := parseImageIDs([]string{*id})
		if err == nil && (*id == "" || len(ids) != 1) {
			err = errors.New("--image-id is required (imageDigest=sha256:... or imageTag=v1)")
		}
		req := admin.PinImageRequest{RepositoryName: *name}
		if len(ids) == 1 {
			req.ImageID = ids[0]
		}
		return req, errors.Join(err, requireFlag("repository-name", *name))
	}
}

// describeEveryRepository runs describe-repositories; listing every
// repository, it follows the pages (each of admin.MaxPage) to the last and
// prints them as one answer, so no request reads the whole store.
func describeEveryRepository(ctx context.Context, k *adminCall, req any) ([]byte, error) {
	r := req.(admin.DescribeRepositoriesRequest)
	if len(r.RepositoryNames) > 0 {
		return k.do(ctx, "describe-repositories", r)
	}
	page := admin.MaxPage
	r.MaxResults = &page
	all := admin.DescribeRepositoriesResponse{Repositories: []admin.Repository{}}
	for {
		body, err := k.do(ctx, "describe-repositories", r)
		if err != nil {
			return nil, err
		}
		var got admin.DescribeRepositoriesResponse
		if err := json.Unmarshal(body, &got); err != nil {
			return nil, fmt.Errorf("describe-repositories answered something that is not its JSON: %w", err)
		}
		all.Repositories = append(all.Repositories, got.Repositories...)
		if got.NextToken == "" {
			return json.Marshal(all)
		}
		r.NextToken = got.NextToken
	}
}
