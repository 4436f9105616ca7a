package main

import (
	"fmt"
	"time"

	"berth/store/scalestore"
)

// This file turns scenario 13's figures into the report's rows and says,
// for each, what bounds it and how it grows from the small store to the
// large one.

func scaleIntro(large, small scalestore.Shape, cache string, warm, gets int) string {
	where := "built in the run"
	if cache != "" {
		where = "built once into " + cache + " (on tmpfs, then copied there: blob commits are synced one at a time, " +
			"so building on the data disk takes many minutes) and served from there in place by every run (a run " +
			"changes it little: access times, a lifecycle policy, and the one image its eviction pass takes)"
	}
	return fmt.Sprintf("A synthetic store, built through the store API (blobs with `BlobWriter`, the rest in batches) and %s: "+
		"the large store holds %s; the small one, the reference of every row, %s (the same shape, built in the run). Half "+
		"the repositories are local, half cached from the bench upstream rule; each image lists one config and two layers. "+
		"For each store: one eviction pass in process (`reclaim.Evict` down to one byte under the store's size, so it "+
		"plans over everything and evicts about one image), then the real `berth serve` on it: start to ready is from exec "+
		"to `/readyz` answering 200; RSS is VmRSS once ready, and VmHWM after everything below; manifests GET by tag "+
		"of random tags of the local repositories (16 connections; %s not measured to warm the store, then %s "+
		"measured, the same draws on both stores); the first page (100 entries) of "+
		"describe-repositories, describe-repositories with `includeCached`, list-images, `_catalog` and `tags/list`, "+
		"each the median of 15 calls; a garbage collection (`start-gc`) and a lifecycle run (`run-lifecycle`, a policy "+
		"on every repository that keeps 100 images, so every image is evaluated and none expires).",
		where, shapeLabel(large), shapeLabel(small), fmtNum(float64(warm), 0), fmtNum(float64(gets), 0))
}

func mb(v float64) Sample { return sample("MB", 0, v) }

func scaleRows(s *Section, small, large *scaleFigures) {
	ref := "small store"
	row := func(measure string, b, r Sample, t *Target, why string) *Row {
		return s.add(&Row{Case: "large store", Measure: measure, Berth: b, Ref: r, RefName: ref, Target: t, Why: why})
	}
	secs := func(d time.Duration) Sample { return sample("s", 2, d.Seconds()) }
	row("start to ready", secs(large.ready), secs(small.ready), &Target{atMostAbs, 5, "≤ 5 s"},
		"Start opens pebble and checks every blob file against the index.")
	row("RSS when ready", mb(large.rssReady), mb(small.rssReady), nil, "")
	row("peak RSS (after GC and lifecycle)", mb(large.rssPeak), mb(small.rssPeak), &Target{atMostAbs, 300, "≤ 300 MB"},
		"Garbage collection, eviction and lifecycle expiry hold the reachability graph of every image while they "+
			"run, compactly: each blob and manifest digest a 32-byte key in a sorted table, what a manifest lists "+
			"4-byte ids, sets bitsets; garbage collection holds only the two tables and its sets (about 25 MB live "+
			"at 700,000 objects, measured in process; the images, what manifests list and the links are read as they "+
			"come). The Go heap grows to twice its live size before it collects, and what is live during a pass is "+
			"the graph plus the caches the pulls before it filled (hot manifests, tags, access times), so the peak is "+
			"about twice both; each pass ends with a collection that returns the graph's memory, so the lifecycle run "+
			"after garbage collection no longer grows the heap to the pass's height again.")
	us := func(l loadResult, p float64) Sample { return sample("µs", 0, float64(l.Pct(p))/1e3) }
	row("GET manifest by tag p50", us(large.getTag, 0.5), us(small.getTag, 0.5), nil, "")
	// Against itself (a smoke run's tiny stores) the ratio is noise only.
	p99 := &Target{atMostRatio, 1.2, "≤ 1.2×"}
	if large.shape == small.shape {
		p99 = nil
	}
	row("GET manifest by tag p99", us(large.getTag, 0.99), us(small.getTag, 0.99), p99,
		"Every pull by tag reads the tag, the image record and (when not hot) the manifest (not the repository's "+
			"record, and no write: its access time goes to a table in memory that is written in batches once a minute); "+
			"the small store's tags and manifests are all in memory and its blocks in pebble's cache, the large store's "+
			"mostly are not: the tag's and the image record's blocks miss pebble's block cache on most pulls (a pread, "+
			"a decompression, an allocation each). "+
			"With 16 connections on two cores shared with the client, the p99 follows the CPU a pull costs.")
	rps := func(l loadResult) Sample { return sample("", 0, l.RPS()) }
	row("GET manifest by tag, requests/s", rps(large.getTag), rps(small.getTag), nil, "")
	med := func(x Sample) Sample { return sample(x.Unit, x.Prec, x.Median()) }
	page := &Target{atMostAbs, 50, "≤ 50 ms"}
	row("describe-repositories, first page", med(large.describe), med(small.describe), page, "")
	row("describe-repositories includeCached, first page", med(large.describeC), med(small.describeC), page, "")
	row("list-images, first page", med(large.listImages), med(small.listImages), page, "")
	row("_catalog?n=100", med(large.catalog), med(small.catalog), page, "")
	row("tags/list?n=100", med(large.tagsList), med(small.tagsList), page, "")
	row("GC pass", secs(large.gc), secs(small.gc), nil, "")
	perSec := func(n int, d time.Duration) Sample { return sample("/s", 0, float64(n)/max(d.Seconds(), 1e-6)) }
	gcN := func(f *scaleFigures) int { return f.gcRep.BlobsKept + f.gcRep.BlobsDeleted + f.shape.Manifests }
	row("GC throughput (blobs + manifests)", perSec(gcN(large), large.gc), perSec(gcN(small), small.gc), nil, "")
	row("eviction pass", secs(large.evict), secs(small.evict), nil, "")
	row("eviction throughput (blobs + manifests)", perSec(large.shape.Blobs+large.shape.Manifests, large.evict),
		perSec(small.shape.Blobs+small.shape.Manifests, small.evict), nil, "")
	row("lifecycle pass", secs(large.life), secs(small.life), nil, "")
	row("lifecycle throughput (images)", perSec(large.lifeImages, large.life), perSec(small.lifeImages, small.life), nil, "")
	row("store open in process", secs(large.open), secs(small.open), nil, "")
	scaleNotes(s, small, large)
}

func scaleNotes(s *Section, small, large *scaleFigures) {
	x := float64(large.shape.Tags) / float64(small.shape.Tags)
	grow := func(a, b float64) string {
		if a <= 0 {
			return "n/a"
		}
		return fmt.Sprintf("%.1f×", b/a)
	}
	if large.built {
		s.note("The large store was built in this run in %s.", large.build.Round(time.Second))
	}
	s.note("Data grows %.0f× from the small store to the large one. Start to ready grows %s: it is bounded by the "+
		"disk and one core (pebble's open, then one index lookup per blob file found under blobs/).",
		x, grow(small.ready.Seconds(), large.ready.Seconds()))
	s.note("RSS when ready grows %s: tags and manifests stay in pebble and are cached in bounded caches "+
		"(hot manifests by bytes, tags and access times by count); the peak grows %s, bounded by the reclaim passes, "+
		"which hold every digest of the store while they run (as 32-byte keys in sorted tables, see the peak RSS row).", grow(small.rssReady, large.rssReady), grow(small.rssPeak, large.rssPeak))
	s.note("GET by tag p99 grows %s: each pull reads two or three records from pebble, through a 16 MiB block "+
		"cache (8 MiB of blocks beside the memtables' reservation) and bloom filters that skip the levels without the "+
		"key; the large store's records do not fit it, the small store's do, so the large store's pulls cost more CPU, "+
		"and the client, Berth and pebble share the cores.",
		grow(float64(small.getTag.Pct(0.99)), float64(large.getTag.Pct(0.99))))
	s.note("First pages (describe-repositories %s, with cached %s, list-images %s, _catalog %s, tags/list %s) read "+
		"only the keys of the page from pebble: they stay flat with the store's size.",
		grow(small.describe.Median(), large.describe.Median()), grow(small.describeC.Median(), large.describeC.Median()),
		grow(small.listImages.Median(), large.listImages.Median()), grow(small.catalog.Median(), large.catalog.Median()),
		grow(small.tagsList.Median(), large.tagsList.Median()))
	s.note("The reclaim passes grow with the store, as a full pass must: GC %s, eviction %s (it evicted %d images, "+
		"%d blobs), lifecycle %s over %d repositories and %d images; each is bounded by one core and pebble iteration, "+
		"and none runs on a request path.",
		grow(small.gc.Seconds(), large.gc.Seconds()), grow(small.evict.Seconds(), large.evict.Seconds()),
		large.evictRep.ImagesEvicted, large.evictRep.BlobsEvicted, grow(small.life.Seconds(), large.life.Seconds()),
		large.lifeRepos, large.lifeImages)
	if large.getTag.Errors+small.getTag.Errors > 0 {
		s.note("Failed GETs by tag: %d on the large store, %d on the small one.", large.getTag.Errors, small.getTag.Errors)
	}
}
