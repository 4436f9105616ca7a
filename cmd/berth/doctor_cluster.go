package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// maxMemberSkew is the clock difference between cluster members doctor
// reports: tag TTLs, tokens and the peer API's signed requests (refused
// beyond 5 minutes) assume members whose clocks agree.
const maxMemberSkew = 2 * time.Second

// memberClocks is the admin listener's GET /cluster/clocks answer.
type memberClocks struct {
	Self    string `json:"self"`
	Members []struct {
		Name             string  `json:"name"`
		OffsetSeconds    float64 `json:"offsetSeconds"`
		RoundTripSeconds float64 `json:"roundTripSeconds"`
		Error            string  `json:"error"`
	} `json:"members"`
}

// checkClusterClocks asks the node to measure the other members' clocks
// and reports each one that differs from the node's by more than
// maxMemberSkew.
func (d *doctor) checkClusterClocks() {
	if !d.cfg.Cluster.Enabled() || d.admin == "" {
		return
	}
	var mc memberClocks
	if err := d.getJSON(d.admin+"/cluster/clocks", &mc); err != nil {
		d.add("cluster-clocks", "warn", "cannot read the members' clocks: "+err.Error(), nil)
		return
	}
	bad := 0
	for _, m := range mc.Members {
		check := "cluster-clock/" + m.Name
		if m.Error != "" {
			bad++
			d.add(check, "warn", fmt.Sprintf("%s could not read %s's clock: %s", mc.Self, m.Name, m.Error),
				&fix{Command: "check that " + m.Name + " runs and its peer listener (cluster.peerAddr) is reachable from " + mc.Self})
			continue
		}
		off := time.Duration(m.OffsetSeconds * float64(time.Second))
		margin := time.Duration(m.RoundTripSeconds * float64(time.Second) / 2)
		if off.Abs()-margin > maxMemberSkew {
			bad++
			d.add(check, "fail", fmt.Sprintf("%s's clock is %s off %s's (more than %s): tag TTLs, tokens and peer requests depend on clocks that agree",
				m.Name, off.Round(time.Millisecond), mc.Self, maxMemberSkew),
				&fix{Command: "timedatectl set-ntp true (or enable chronyd), on " + m.Name + " and " + mc.Self})
		}
	}
	if bad == 0 {
		d.add("cluster-clocks", "ok", fmt.Sprintf("the clocks of %d other members agree with %s's within %s", len(mc.Members), mc.Self, maxMemberSkew), nil)
	}
}

// getJSON asks url and decodes its JSON answer into v.
func (d *doctor) getJSON(u string, v any) error {
	resp, err := d.open(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s answered %s (with auth on, the admin listener needs credentials)", u, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	return nil
}
