package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"berth/admin"
	"berth/scan"
)

// Tables for -o table: one row per item, digests shortened, sizes and
// times for people. The JSON output has everything in full.

func decodeInto[T any](body []byte) (T, error) {
	var v T
	if err := json.Unmarshal(body, &v); err != nil {
		return v, fmt.Errorf("the admin API answered something unexpected: %w", err)
	}
	return v, nil
}

// table writes rows (tab-separated cells) aligned, under a header.
func writeTable(w io.Writer, header string, rows []string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		fmt.Fprintln(tw, r)
	}
	return tw.Flush()
}

func cells(vals ...any) string {
	s := make([]string, len(vals))
	for i, c := range vals {
		s[i] = fmt.Sprint(c)
		if s[i] == "" {
			s[i] = "-"
		}
	}
	return strings.Join(s, "\t")
}

// shortDigest is the algorithm and the first 12 hex digits.
func shortDigest(d string) string {
	alg, hex, ok := strings.Cut(d, ":")
	if !ok || len(hex) <= 12 {
		return d
	}
	return alg + ":" + hex[:12]
}

func fmtTime(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05")
}

// humanBytes prints n in binary units.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func repositoryRow(r admin.Repository) string {
	var ex []string
	for _, f := range r.ImageTagMutabilityExclusionFilters {
		ex = append(ex, f.Filter)
	}
	return cells(r.RepositoryName, r.ImageTagMutability, strings.Join(ex, ","), fmtTime(&r.CreatedAt))
}

const repositoryHeader = "REPOSITORY\tTAG MUTABILITY\tEXCLUSIONS\tCREATED"

func tableRepository(w io.Writer, body []byte) error {
	r, err := decodeInto[admin.RepositoryResponse](body)
	if err != nil {
		return err
	}
	return writeTable(w, repositoryHeader, []string{repositoryRow(r.Repository)})
}

func tableRepositories(w io.Writer, body []byte) error {
	r, err := decodeInto[admin.DescribeRepositoriesResponse](body)
	if err != nil {
		return err
	}
	var rows []string
	for _, repo := range r.Repositories {
		rows = append(rows, repositoryRow(repo))
	}
	return writeTable(w, repositoryHeader, rows)
}

func tableMutability(w io.Writer, body []byte) error {
	r, err := decodeInto[admin.PutImageTagMutabilityRequest](body)
	if err != nil {
		return err
	}
	return writeTable(w, repositoryHeader, []string{repositoryRow(admin.Repository{RepositoryName: r.RepositoryName,
		ImageTagMutability: r.ImageTagMutability, ImageTagMutabilityExclusionFilters: r.ImageTagMutabilityExclusionFilters})})
}

func tableImageIDs(w io.Writer, body []byte) error {
	r, err := decodeInto[admin.ListImagesResponse](body)
	if err != nil {
		return err
	}
	var rows []string
	for _, id := range r.ImageIDs {
		rows = append(rows, cells(id.ImageDigest, id.ImageTag))
	}
	return writeTable(w, "DIGEST\tTAG", rows)
}

func tableImageDetails(w io.Writer, body []byte) error {
	r, err := decodeInto[admin.DescribeImagesResponse](body)
	if err != nil {
		return err
	}
	var rows []string
	for _, d := range r.ImageDetails {
		rows = append(rows, cells(d.RepositoryName, shortDigest(d.ImageDigest), strings.Join(d.ImageTags, ","),
			humanBytes(d.ImageSizeInBytes), fmtTime(d.ImagePushedAt), fmtTime(d.LastRecordedPullTime), d.SourceUpstream, scanCell(d)))
	}
	return writeTable(w, "REPOSITORY\tDIGEST\tTAGS\tSIZE\tPUSHED\tLAST PULL\tUPSTREAM\tSCAN", rows)
}

// scanCell is an image's scan status and, for a complete scan, its
// findings by severity ("COMPLETE CRITICAL:1 HIGH:2", "COMPLETE none").
func scanCell(d admin.ImageDetail) string {
	if d.ImageScanStatus == nil {
		return ""
	}
	out := d.ImageScanStatus.Status
	if f := d.ImageScanFindingsSummary; f != nil {
		var counts []string
		for _, sev := range scan.Severities {
			if n := f.FindingSeverityCounts[sev]; n > 0 {
				counts = append(counts, fmt.Sprintf("%s:%d", sev, n))
			}
		}
		if len(counts) == 0 {
			counts = []string{"none"}
		}
		out += " " + strings.Join(counts, " ")
	}
	return out
}

func tableBatchDelete(w io.Writer, body []byte) error {
	r, err := decodeInto[admin.BatchDeleteImageResponse](body)
	if err != nil {
		return err
	}
	var rows []string
	for _, id := range r.ImageIDs {
		rows = append(rows, cells(id.ImageDigest, id.ImageTag, "deleted"))
	}
	for _, f := range r.Failures {
		rows = append(rows, cells(f.ImageID.ImageDigest, f.ImageID.ImageTag, f.FailureCode+": "+f.FailureReason))
	}
	return writeTable(w, "DIGEST\tTAG\tRESULT", rows)
}

func policyRow(p admin.LifecyclePolicy) string {
	var doc struct {
		Rules []json.RawMessage `json:"rules"`
	}
	_ = json.Unmarshal([]byte(p.LifecyclePolicyText), &doc)
	return cells(p.RepositoryName, p.PolicyScope, len(doc.Rules), fmtTime(p.UpdatedAt), fmtTime(p.LastEvaluatedAt))
}

const policyHeader = "REPOSITORY\tSET ON\tRULES\tUPDATED\tLAST EVALUATED"

func tablePolicy(w io.Writer, body []byte) error {
	p, err := decodeInto[admin.LifecyclePolicy](body)
	if err != nil {
		return err
	}
	if err := writeTable(w, policyHeader, []string{policyRow(p)}); err != nil {
		return err
	}
	fmt.Fprintln(w)
	return printJSON(w, []byte(p.LifecyclePolicyText))
}

func tablePolicies(w io.Writer, body []byte) error {
	r, err := decodeInto[admin.DescribeLifecyclePoliciesResponse](body)
	if err != nil {
		return err
	}
	var rows []string
	for _, p := range r.LifecyclePolicies {
		rows = append(rows, policyRow(p))
	}
	return writeTable(w, policyHeader, rows)
}

func resultRows(rs []admin.PreviewResult) []string {
	var rows []string
	for _, r := range rs {
		rows = append(rows, cells(r.RepositoryName, shortDigest(r.ImageDigest), strings.Join(r.ImageTags, ","),
			fmtTime(r.ImagePushedAt), humanBytes(r.ImageSizeInBytes), r.AppliedRulePriority, r.Reason))
	}
	return rows
}

const resultHeader = "REPOSITORY\tDIGEST\tTAGS\tPUSHED\tSIZE\tRULE\tREASON"

func tablePreview(w io.Writer, body []byte) error {
	p, err := decodeInto[admin.LifecyclePolicyPreview](body)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "Preview of %s: %s\n", p.RepositoryName, p.Status)
	if p.FailureReason != "" {
		fmt.Fprintf(w, "Failed: %s\n", p.FailureReason)
	}
	if p.Progress != nil {
		fmt.Fprintf(w, "Evaluated %d images in %d of %d repositories\n", p.Progress.ImagesEvaluated, p.Progress.RepositoriesDone, p.Progress.RepositoriesTotal)
	}
	if p.Summary != nil {
		fmt.Fprintf(w, "Would expire %d images, up to %s\n", p.Summary.ExpiringImageTotalCount, humanBytes(p.Summary.ExpiringImageTotalBytes))
		var rows []string
		for _, r := range p.Summary.Rules {
			rows = append(rows, cells(r.RulePriority, r.Description, r.ExpiringImageCount, humanBytes(r.ExpiringImageTotalBytes)))
		}
		fmt.Fprintln(w)
		if err := writeTable(w, "RULE\tDESCRIPTION\tIMAGES\tSIZE", rows); err != nil {
			return err
		}
	}
	if len(p.PreviewResults) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	return writeTable(w, resultHeader, resultRows(p.PreviewResults))
}

func tableRun(w io.Writer, body []byte) error {
	r, err := decodeInto[admin.LifecycleRun](body)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "Evaluated %d images in %d repositories; expired %d (%d local), reclaimed %d cached blobs (%s)\n",
		r.ImagesEvaluated, r.RepositoriesEvaluated, r.Expired.ImagesExpired, r.Expired.LocalImagesExpired,
		r.Expired.BlobsDeleted, humanBytes(r.Expired.BytesFreed))
	if r.GC != nil {
		fmt.Fprintf(w, "Garbage collection: %d blobs deleted (%s), %d manifests\n", r.GC.BlobsDeleted, humanBytes(r.GC.BytesFreed), r.GC.ManifestsDeleted)
	}
	for _, e := range r.Errors {
		fmt.Fprintf(w, "Error: %s\n", e)
	}
	if len(r.ExpiredImages) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	return writeTable(w, resultHeader, resultRows(r.ExpiredImages))
}

func ruleRow(r admin.PullThroughCacheRule) string {
	def := ""
	if r.Default {
		def = "yes"
	}
	active := "no (restart)"
	if r.Active {
		active = "yes"
	}
	return cells(r.Name, r.EcrRepositoryPrefix, r.UpstreamRegistry, r.UpstreamRegistryURL, def, r.TTL, r.Source, active)
}

const ruleHeader = "NAME\tPREFIX\tREGISTRY\tURL\tDEFAULT\tTTL\tSOURCE\tACTIVE"

func tableRules(w io.Writer, body []byte) error {
	r, err := decodeInto[admin.DescribePullThroughCacheRulesResponse](body)
	if err != nil {
		return err
	}
	var rows []string
	for _, rule := range r.PullThroughCacheRules {
		rows = append(rows, ruleRow(rule))
	}
	return writeTable(w, ruleHeader, rows)
}

func tableRule(w io.Writer, body []byte) error {
	r, err := decodeInto[admin.PullThroughCacheRuleResponse](body)
	if err != nil {
		return err
	}
	if err := writeTable(w, ruleHeader, []string{ruleRow(r.PullThroughCacheRule)}); err != nil {
		return err
	}
	if r.Note != "" {
		fmt.Fprintf(w, "\nNote: %s\n", r.Note)
	}
	return nil
}

func tableCache(w io.Writer, body []byte) error {
	r, err := decodeInto[admin.DescribeCacheResponse](body)
	if err != nil {
		return err
	}
	rows := []string{
		cells("store", fmt.Sprintf("%s in %d blobs", humanBytes(r.Store.Bytes), r.Store.Blobs)),
		cells("local", fmt.Sprintf("%d repositories, %d images", r.Local.Repositories, r.Local.Images)),
	}
	counted := "not yet (the node counts in the background)"
	if r.CountsAsOf != nil {
		counted = r.CountsAsOf.Format(time.RFC3339)
	}
	rows = append(rows, cells("counted at", counted))
	if q := r.Requests; q != nil {
		rows = append(rows, cells("hit ratio", fmt.Sprintf("%.1f%% (%d hits, %d misses, %d revalidated, %d stale)",
			100*q.HitRatio, q.Hits, q.Misses, q.Revalidated, q.Stale)))
	}
	if r.Evictions != nil {
		rows = append(rows, cells("evicted", fmt.Sprintf("%d blobs", r.Evictions.Blobs)))
	}
	if err := writeTable(w, "WHAT\tVALUE", rows); err != nil {
		return err
	}
	rows = nil
	for _, u := range r.Upstreams {
		rows = append(rows, cells(u.Name, u.Prefix, u.Repositories, u.Images))
	}
	fmt.Fprintln(w)
	return writeTable(w, "UPSTREAM\tPREFIX\tREPOSITORIES\tIMAGES", rows)
}

func tableGC(w io.Writer, body []byte) error {
	r, err := decodeInto[admin.StartGCResponse](body)
	if err != nil {
		return err
	}
	return writeTable(w, "BLOBS DELETED\tFREED\tMANIFESTS DELETED\tBLOBS KEPT\tTOOK", []string{
		cells(r.BlobsDeleted, humanBytes(r.BytesFreed), r.ManifestsDeleted, r.BlobsKept, time.Duration(r.DurationSeconds*float64(time.Second)).Round(time.Millisecond)),
	})
}

func tableRepositoryPolicy(w io.Writer, body []byte) error {
	p, err := decodeInto[admin.RepositoryPolicy](body)
	if err != nil {
		return err
	}
	if err := writeTable(w, "REPOSITORY", []string{p.RepositoryName}); err != nil {
		return err
	}
	fmt.Fprintln(w)
	return printJSON(w, []byte(p.PolicyText))
}

func tableRevoke(w io.Writer, body []byte) error {
	r, err := decodeInto[admin.RevokeTokensResponse](body)
	if err != nil {
		return err
	}
	return writeTable(w, "USER\tREVOKED AT\tNOTE", []string{cells(r.UserName, r.RevokedAt.Format(time.RFC3339), r.Note)})
}

func tableRotateKey(w io.Writer, body []byte) error {
	r, err := decodeInto[admin.RotateKeyResponse](body)
	if err != nil {
		return err
	}
	err = writeTable(w, "FROM\tTO\tBLOBS\tMANIFESTS\tSCANS\tDURATION",
		[]string{cells(r.From, r.To, fmt.Sprint(r.Blobs), fmt.Sprint(r.Manifests), fmt.Sprint(r.Scans), r.Duration.String())})
	fmt.Fprintln(w, r.Note)
	return err
}

func tablePin(w io.Writer, body []byte) error {
	r, err := decodeInto[admin.PinImageResponse](body)
	if err != nil {
		return err
	}
	return writeTable(w, "REPOSITORY\tDIGEST\tPINNED", []string{cells(r.RepositoryName, r.ImageDigest, fmt.Sprint(r.Pinned))})
}
