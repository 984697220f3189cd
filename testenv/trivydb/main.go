// Command trivydb writes a small Trivy vulnerability DB for the scan-gate tests: the tests
// cannot download the real one here, and a DB they write themselves makes the expected
// findings exact. Test scaffolding only.
//
// Usage: trivydb -cache DIR < spec.json
// spec: {"advisories":[{"os":"debian 12","pkg":"zlib","id":"CVE-…","fixed":"1:9.9","severity":"CRITICAL"}]}
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

type advisory struct {
	OS       string `json:"os"`
	Pkg      string `json:"pkg"`
	ID       string `json:"id"`
	Fixed    string `json:"fixed"`
	Severity string `json:"severity"`
}

type spec struct {
	Advisories []advisory `json:"advisories"`
}

// Trivy's severity numbers, as in trivy-db's types.Severity.
var severities = map[string]int{"UNKNOWN": 0, "LOW": 1, "MEDIUM": 2, "HIGH": 3, "CRITICAL": 4}

func put(tx *bolt.Tx, path []string, key string, value any) error {
	b, err := tx.CreateBucketIfNotExists([]byte(path[0]))
	if err != nil {
		return err
	}
	for _, p := range path[1:] {
		if b, err = b.CreateBucketIfNotExists([]byte(p)); err != nil {
			return err
		}
	}
	data, err := json.Marshal(value)
	if err != nil {
		return err
	}
	return b.Put([]byte(key), data)
}

func write(cache string, s spec) error {
	dir := filepath.Join(cache, "db")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	_ = os.Remove(filepath.Join(dir, "trivy.db"))
	db, err := bolt.Open(filepath.Join(dir, "trivy.db"), 0o644, nil)
	if err != nil {
		return err
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		for _, a := range s.Advisories {
			sev, ok := severities[a.Severity]
			if !ok {
				return fmt.Errorf("advisory %s: unknown severity %q", a.ID, a.Severity)
			}
			if err := put(tx, []string{a.OS, a.Pkg}, a.ID, map[string]any{"FixedVersion": a.Fixed}); err != nil {
				return err
			}
			vuln := map[string]any{
				"Title":          "test advisory " + a.ID,
				"Severity":       a.Severity,
				"VendorSeverity": map[string]int{"debian": sev, "nvd": sev},
			}
			if err := put(tx, []string{"vulnerability"}, a.ID, vuln); err != nil {
				return err
			}
			source := map[string]string{"ID": "debian", "Name": "Debian Security Tracker", "URL": "https://salsa.debian.org/security-tracker-team/security-tracker"}
			if err := put(tx, []string{"data-source"}, a.OS, source); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	meta := map[string]any{"Version": 2, "NextUpdate": now.Add(24 * time.Hour), "UpdatedAt": now, "DownloadedAt": now}
	data, _ := json.Marshal(meta)
	return os.WriteFile(filepath.Join(dir, "metadata.json"), data, 0o644)
}

func main() {
	cache := flag.String("cache", "", "Trivy cache dir to write db/ into")
	flag.Parse()
	if *cache == "" {
		fmt.Fprintln(os.Stderr, "trivydb: -cache DIR is required")
		os.Exit(2)
	}
	var s spec
	if err := json.NewDecoder(os.Stdin).Decode(&s); err != nil {
		fmt.Fprintln(os.Stderr, "trivydb: reading spec from stdin:", err)
		os.Exit(2)
	}
	if err := write(*cache, s); err != nil {
		fmt.Fprintln(os.Stderr, "trivydb:", err)
		os.Exit(1)
	}
}
