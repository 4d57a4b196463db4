package chaos

import (
	"strings"
	"testing"
	"time"
)

func TestParseNames(t *testing.T) {
	s := Schedule{Interval: time.Second, Duration: time.Second}
	for _, ok := range []string{"none", "kill-writer", "pause-storage", "kill-az-az1", "pause-minority", "failover", "kill-writer,pause-reader",
		"partition-az-az1", "partition-writer-storage", "partition-writer-replicas", "partition-halves", "partition-bridge",
		"latency-all", "latency-storage", "latency-writer", "latency-az-az2", "kill-writer,partition-halves",
		"outage-writer-az", "outage-writer-az-plus-one", "outage-az-az3"} {
		if _, err := New(ok, nil, s); err != nil {
			t.Errorf("%s rejected: %v", ok, err)
		}
	}
	for _, bad := range []string{"kill", "explode-writer", "kill-everything", "kill-az-", "kill-writer,,", "pause-writer,meteor", "outage-writer", "outage-az-"} {
		_, err := New(bad, nil, s)
		if err == nil || !strings.Contains(err.Error(), "unknown nemesis") {
			t.Errorf("%s accepted (err %v)", bad, err)
		}
	}
	if _, err := New("kill-writer", nil, Schedule{}); err == nil {
		t.Error("zero schedule accepted")
	}
}
