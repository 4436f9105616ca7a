package config

import (
	"strings"
	"testing"
)

func TestScanningVulnDB(t *testing.T) {
	cfg, err := Parse([]byte("scanning: {vulnDB: /var/lib/osv}\n"))
	if err != nil || cfg.Scanning.VulnDB != "/var/lib/osv" {
		t.Fatalf("scanning.vulnDB: %+v, %v", cfg.Scanning, err)
	}
	if cfg, err := Parse(nil); err != nil || cfg.Scanning.VulnDB != "" {
		t.Fatalf("default scanning: %+v, %v", cfg.Scanning, err)
	}
	_, err = Parse([]byte("scanning: {vulnDB: ' /x '}\n"))
	if err == nil || !strings.Contains(err.Error(), "scanning.vulnDB") {
		t.Fatalf("a path with spaces: %v", err)
	}
}
